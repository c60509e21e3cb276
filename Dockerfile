FROM python:3.11-slim
# mosquitto ships mosquitto_passwd, which `vigie broker credentials` hashes passwords with.
RUN apt-get update && apt-get install -y --no-install-recommends mosquitto && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY pyproject.toml README.md ./
COPY vigie ./vigie
COPY ingest ./ingest
COPY analytics ./analytics
COPY alerts ./alerts
COPY api ./api
COPY simulators ./simulators
RUN pip install --no-cache-dir .
ENV VIGIE_DATA_DIR=/var/lib/vigie VIGIE_API_HOST=0.0.0.0
VOLUME /var/lib/vigie
EXPOSE 8000
ENTRYPOINT ["vigie"]
CMD ["serve"]
