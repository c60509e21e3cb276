FROM python:3.11-slim
# mosquitto ships mosquitto_passwd, which `vigie broker credentials` hashes passwords with.
RUN apt-get update && apt-get install -y --no-install-recommends mosquitto && rm -rf /var/lib/apt/lists/*
# A non-root user. uid/gid 1883 are the broker's in the eclipse-mosquitto image: the password file and
# ACL that `vigie broker credentials` writes (mode 0600) into the volume Mosquitto mounts stay
# readable by it (docker-compose.yml, service broker-credentials). Override with --build-arg VIGIE_UID.
ARG VIGIE_UID=1883
RUN groupadd --system --gid "$VIGIE_UID" vigie \
 && useradd --system --uid "$VIGIE_UID" --gid vigie --home-dir /var/lib/vigie --no-create-home \
            --shell /usr/sbin/nologin vigie \
 && install -d -o vigie -g vigie -m 0700 /var/lib/vigie /var/lib/vigie-broker
WORKDIR /app
COPY pyproject.toml README.md ./
COPY vigie ./vigie
COPY ingest ./ingest
COPY analytics ./analytics
COPY alerts ./alerts
COPY api ./api
COPY simulators ./simulators
RUN pip install --no-cache-dir .
# State in the volume: the spool, dead letters and the generated link-signing key (VIGIE_DATA_DIR),
# and the SQLite registry, which the default URL would put in /app (root-owned).
ENV VIGIE_DATA_DIR=/var/lib/vigie VIGIE_DATABASE_URL=sqlite:////var/lib/vigie/vigie.db VIGIE_API_HOST=0.0.0.0
USER vigie
VOLUME /var/lib/vigie
EXPOSE 8000
# Readiness (/ready: 200 once InfluxDB, the broker and the database answer, else 503), on the port
# the service listens on. python: the slim image has no curl.
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
  CMD python -c "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/ready' % os.environ.get('VIGIE_API_PORT', '8000'), timeout=4)"
ENTRYPOINT ["vigie"]
CMD ["serve"]
