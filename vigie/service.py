"""``vigie serve``: ingest, scheduler (J+1 check, delivery) and the HTTP API in one process."""

from __future__ import annotations

import logging
import signal
import threading

from vigie.context import AppContext

log = logging.getLogger(__name__)


def wait_for_signal() -> None:
    """Block until SIGINT or SIGTERM."""
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()


def run_service(ctx: AppContext) -> None:
    """Start every stage, serve the API until SIGINT/SIGTERM, then stop in reverse order
    (the ingestor last flushes its spool, so nothing acknowledged is lost)."""
    import uvicorn

    from vigie.api.app import create_app
    from vigie.ingest.service import Ingestor
    from vigie.scheduler import build_scheduler

    ingestor = Ingestor(ctx.settings, ctx.store, ctx.sessions)
    ingestor.start()
    scheduler = build_scheduler(ctx)
    scheduler.start()
    app = create_app(ctx, ingestor=ingestor)
    config = uvicorn.Config(app, host=ctx.settings.api_host, port=ctx.settings.api_port, log_level="info",
                            log_config=None)  # uvicorn's records go through vigie.logs' redacting handler
    server = uvicorn.Server(config)
    log.info("API on http://%s:%d (docs at /docs)", ctx.settings.api_host, ctx.settings.api_port)
    try:
        server.run()  # handles SIGINT/SIGTERM itself
    finally:
        scheduler.shutdown(wait=True)
        ingestor.stop()
        ctx.close()
        log.info("stopped")
