"""What an operator watches: Prometheus metrics (``GET /metrics``, prometheus-client) and, on request,
one JSON access-log line per request. Both come from one outermost ASGI middleware, so refusals made
before the app runs (a 413 body, a 401 key) are counted and logged too.

With several workers, prometheus-client's multiprocess mode sums every worker's figures: ``serve`` sets
``PROMETHEUS_MULTIPROC_DIR`` to a fresh folder before the workers start (the library reads it at import).
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import time
import uuid

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest

ACCESS_LOGGER = "recdistill.access"
KNOWN_PATHS = ("/recommend", "/recommend/batch", "/health", "/metadata", "/reload", "/metrics", "/docs",
               "/openapi.json")
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")  # a client's X-Request-ID is kept only if it is this tame
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


def path_label(path: str) -> str:
    """A bounded set of label values: any other path would let a client create metrics without end."""
    if path in KNOWN_PATHS:
        return path
    if path.startswith("/items/"):
        return "/items/{id}"
    return "other"


class Metrics:
    """Request counts by path and status, a latency histogram by path, and non-finite model answers."""

    def __init__(self):
        self.registry = CollectorRegistry()
        self.requests = Counter("recdistill_requests", "HTTP requests answered, by path and status",
                                ["path", "status"], registry=self.registry)
        self.latency = Histogram("recdistill_request_seconds", "time from request to the last byte of the answer",
                                 ["path"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.nonfinite = Counter("recdistill_nonfinite_scores", "answers refused (500) because the model gave "
                                 "NaN or infinite scores", registry=self.registry)

    def render(self) -> tuple[bytes, str]:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            from prometheus_client import multiprocess

            registry = CollectorRegistry()  # a fresh one per scrape, summing the files of every worker
            multiprocess.MultiProcessCollector(registry)
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST


def json_access_logger() -> logging.Logger:
    """One JSON object per line on stderr; its own handler, so uvicorn's log settings do not touch it."""
    logger = logging.getLogger(ACCESS_LOGGER)
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(message)s"))
        logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return logger


class Observe:
    """ASGI middleware: counts and times every HTTP request, gives it a request id (the client's
    ``X-Request-ID`` if tame, else a new one, echoed in the answer) and logs it when ``access_log`` is set."""

    def __init__(self, app, metrics: Metrics, access_log: logging.Logger | None = None):
        self.app, self.metrics, self.access_log = app, metrics, access_log

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        given = dict(scope.get("headers") or []).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex
        status = 500  # if the app dies before it answers

        async def observed_send(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []),
                                                  (b"x-request-id", request_id.encode())]}
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                self._record(scope, status, start, request_id)

        await self.app(scope, receive, observed_send)

    def _record(self, scope, status: int, start: float, request_id: str) -> None:
        seconds = time.perf_counter() - start
        label = path_label(scope.get("path", ""))
        self.metrics.requests.labels(label, str(status)).inc()
        self.metrics.latency.labels(label).observe(seconds)
        if self.access_log is not None:
            client = scope.get("client")
            self.access_log.info(json.dumps({
                "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime()) + "Z", "method": scope.get("method"),
                "path": scope.get("path"), "status": status, "latency_ms": round(seconds * 1000, 3),
                "request_id": request_id, "client": client[0] if client else None, "pid": os.getpid()}))
