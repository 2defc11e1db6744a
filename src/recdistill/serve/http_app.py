"""The HTTP service: ``POST /recommend``, ``POST /recommend/batch``, ``GET /health``, ``GET /items/{id}``,
``GET /metadata``, ``GET /metrics`` (Prometheus), ``POST /reload``.

Built on FastAPI + uvicorn: a well-kept ASGI stack where pydantic checks every request body (a wrong type
names the field), and uvicorn is a production server. LitServe was the other candidate; its strength is
batching requests across clients onto a GPU, while here one scorer call takes a whole batch request and the
model runs on a CPU in about a millisecond, so it would add a dependency for nothing.

Every bad input gets a 4xx whose ``error`` says what was wrong; the service keeps serving afterwards.
"""

from __future__ import annotations

import hmac

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StringConstraints

from recdistill.errors import RecdistillError
from recdistill.serve.observe import Metrics, Observe
from recdistill.serve.recommend import top_k
from recdistill.serve.scorers import pad_histories

MAX_HISTORY = 10_000  # items accepted in one history (seen-item exclusion reads them all)
MAX_BODY_BYTES = 2 * 1024 * 1024  # a request body over this is refused before it is parsed (--max-body-bytes)
MAX_HEADER_BYTES = 16 * 1024  # request headers in all (h11's limit for a head that arrives in pieces)
MAX_BATCH_ITEMS = 100_000  # history items over all requests of one batch (--max-batch-items): a CPU-time cap
Title = Annotated[str, StringConstraints(strict=True, max_length=500)]


class RecommendRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    history: list[StrictInt | Title] | None = Field(None, description="item ids or titles, oldest first")
    user: StrictInt | None = Field(None, description="a user id of the dataset (their whole history is used)")
    k: StrictInt = 10
    exclude_seen: StrictBool = True


class BatchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    requests: list[RecommendRequest]


class BadRequest(Exception):
    def __init__(self, status: int, message: str):
        self.status, self.message = status, message


def _validation_message(exc: RequestValidationError) -> tuple[int, str]:
    first = exc.errors()[0] if exc.errors() else {}
    if first.get("type") == "json_invalid":
        return 400, f"malformed JSON: {first.get('ctx', {}).get('error', 'cannot parse the body')}"
    loc = [p for p in first.get("loc", ()) if p != "body"]
    if not loc and first.get("type") == "missing":
        return 400, 'the body is empty; send JSON such as {"history": [1, 2], "k": 10} or {"user": 1}'
    if len(loc) >= 2 and loc[0] == "history" and isinstance(loc[1], int):
        # the union int | title reports one error per member; one sentence says it better
        return 422, f"history[{loc[1]}]: expected an item id (integer) or a title (string of at most 500 characters)"
    where = ".".join(str(p) for p in loc) or "body"
    more = f" (and {len(exc.errors()) - 1} more problems)" if len(exc.errors()) > 1 else ""
    return 422, f"{where}: {first.get('msg', 'invalid value')}{more}"


class BodyLimit:
    """ASGI middleware: a body longer than ``limit`` bytes is a 413 before anything parses it, whether its
    Content-Length says so or it arrives chunked (counted as it is read); headers over 16 KiB are a 431. Written by hand: neither FastAPI
    nor uvicorn has a body-size option."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, int(limit)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = scope.get("headers") or []
        if sum(len(k) + len(v) + 4 for k, v in headers) > MAX_HEADER_BYTES:
            # h11 refuses a longer head only when it arrives in pieces; one that came in a single read is refused here
            return await self._refuse(send, 431, f"request headers over {MAX_HEADER_BYTES} bytes; send fewer or "
                                                 "shorter headers")
        declared = dict(headers).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            return await self._refuse(send)
        received, refused = 0, False

        async def counted():
            # past the limit: answer 413 now and tell the app the client left, so it stops reading
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.limit:
                    refused = True
                    await self._refuse(send)
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            if not refused:  # after a 413 the app's own answer (to a "disconnect") is dropped
                await send(message)

        try:
            await self.app(scope, counted, guarded_send)
        except Exception:
            if not refused:
                raise

    async def _refuse(self, send, status: int = 413, message: str | None = None):
        message = message or f"request body over {self.limit} bytes; send fewer or shorter histories"
        body = JSONResponse({"error": message}, status_code=status).body
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def build_app(served, max_k: int = 100, max_batch: int = 256, reopen=None, api_keys: list[str] | None = None,
              max_body_bytes: int = MAX_BODY_BYTES, max_batch_items: int = MAX_BATCH_ITEMS,
              docs: bool = False, access_log=None) -> FastAPI:
    """The app over a :class:`recdistill.serve.source.ServedModel`. ``reopen``: a function that opens the
    model again from its files (``POST /reload``, e.g. after ``recdistill add-items`` rewrote them).
    ``api_keys``: when given, every endpoint but ``/health`` needs one of them in the ``X-API-Key`` header.
    ``docs``: FastAPI's interactive docs (they load their scripts from a CDN, so they are off by default).
    ``access_log``: a logger that gets one JSON line per request (see :mod:`recdistill.serve.observe`)."""
    state = {"served": served, "nonfinite_errors": 0}
    max_k_setting = int(max_k)
    keys = [k.encode() for k in (api_keys or [])]
    app = FastAPI(title="recdistill", description="top-K recommendations from a trained sequential recommender",
                  docs_url="/docs" if docs else None, redoc_url=None, openapi_url="/openapi.json" if docs else None)
    metrics = Metrics()
    app.add_middleware(BodyLimit, limit=max_body_bytes)

    @app.middleware("http")
    async def require_key(request: Request, call_next):
        if keys and request.url.path != "/health":
            given = request.headers.get("x-api-key", "").encode()
            # constant-time against every key, so the time taken says nothing about a key's prefix
            if not any(hmac.compare_digest(given, key) for key in keys):
                return JSONResponse({"error": "missing or wrong API key: send it in the X-API-Key header"},
                                    status_code=401)
        return await call_next(request)

    app.add_middleware(Observe, metrics=metrics, access_log=access_log)  # added last: outermost, sees every answer

    @app.exception_handler(RequestValidationError)
    async def on_validation_error(request: Request, exc: RequestValidationError):
        status, message = _validation_message(exc)
        return JSONResponse({"error": message}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def on_http_error(request: Request, exc: StarletteHTTPException):
        # FastAPI's own 4xx (an unreadable body, an unknown path, a wrong method) in the same {"error": ...} shape
        message = str(exc.detail)
        if exc.status_code == 404:
            message = f"no endpoint {request.url.path}; see GET /health, GET /metadata, GET /items/{{id}}, GET /metrics, POST /recommend, POST /recommend/batch, POST /reload"
        elif exc.status_code == 400:
            message = f"malformed body: {exc.detail} (send UTF-8 JSON)"
        return JSONResponse({"error": message}, status_code=exc.status_code)

    @app.exception_handler(BadRequest)
    async def on_bad_request(request: Request, exc: BadRequest):
        return JSONResponse({"error": exc.message}, status_code=exc.status)

    def resolve(req: RecommendRequest, served) -> tuple[np.ndarray, str | None]:
        catalogue = served.catalogue
        max_k = min(max_k_setting, catalogue.num_items)
        if (req.history is None) == (req.user is None):
            raise BadRequest(422, 'give either "history" (item ids or titles) or "user" (a user id), not both or neither')
        if not 1 <= req.k <= max_k:
            raise BadRequest(422, f"k={req.k} is out of range; expected 1..{max_k}")
        if req.user is not None:
            if req.user not in catalogue.histories:
                raise BadRequest(404, f"unknown user {req.user}: user ids run from 1 to {len(catalogue.histories)}")
            history = catalogue.histories[req.user]
        else:
            if not req.history:
                raise BadRequest(422, "history is empty; give at least one item id or title")
            if len(req.history) > MAX_HISTORY:
                raise BadRequest(413, f"history has {len(req.history)} items; at most {MAX_HISTORY} are accepted")
            try:
                history = catalogue.item_ids(req.history)
            except RecdistillError as exc:
                raise BadRequest(422, str(exc)) from None
        note = None
        if len(history) > served.max_len:
            note = (f"history cut: the model reads the last {served.max_len} of its {len(history)} items "
                    f"({len(history) - served.max_len} older ones ignored; all are still excluded as seen)")
        return history, note

    def answer(reqs: list[RecommendRequest]) -> list[dict]:
        served = state["served"]  # one model for the whole request, even if a reload swaps it meanwhile
        catalogue = served.catalogue
        resolved = [resolve(r, served) for r in reqs]
        items = sum(len(h) for h, _ in resolved)
        if items > max_batch_items:
            raise BadRequest(413, f"the requests hold {items} history items in all; at most {max_batch_items} "
                                  "are scored in one call (split the batch)")
        histories = [h for h, _ in resolved]
        padded, _ = pad_histories(histories, served.max_len)
        scores = served.scorer(padded)
        out = []
        for row, (req, (history, note)) in enumerate(zip(reqs, resolved)):
            if not np.isfinite(scores[row, 1:]).all():
                # a damaged model is an error, never a shorter or reordered list
                state["nonfinite_errors"] += 1
                metrics.nonfinite.inc()
                raise BadRequest(500, "the model produced non-finite scores for this request (NaN or infinite): it "
                                      "is damaged; the operator must retrain or restore it")
            (ids, values), = top_k(scores[row:row + 1], [history], req.k, req.exclude_seen)
            if len(ids) < req.k:
                left = f"only {len(ids)} items are left once the history's {len(set(history.tolist()))} are left out"
                note = f"{note}; {left}" if note else left
            body = {"user": req.user, "k": req.k, "items": [
                {"item": int(i), "original_id": str(catalogue.original_ids[i]), "title": str(catalogue.titles[i]),
                 "score": float(s)} for i, s in zip(ids, values)]}
            if note:
                body["note"] = note
            out.append(body)
        return out

    # plain `def` endpoints: FastAPI runs them in its thread pool, so scoring never blocks the event loop
    @app.post("/recommend")
    def recommend(req: RecommendRequest) -> dict:
        return answer([req])[0]

    @app.post("/recommend/batch")
    def recommend_batch(batch: BatchRequest) -> dict:
        if not 1 <= len(batch.requests) <= max_batch:
            raise BadRequest(422, f"requests has {len(batch.requests)} entries; expected 1..{max_batch}")
        return {"results": answer(batch.requests)}

    @app.get("/health")
    def health():
        served = state["served"]
        body = {"status": "ok", **served.describe(), "max_k": min(max_k_setting, served.catalogue.num_items),
                "max_batch": max_batch, "nonfinite_errors": state["nonfinite_errors"],
                "sha256": served.info.get("sha256")}
        problem = served.file_problem()
        if problem:  # not ready: what is served is no longer what is on disk
            return JSONResponse({**body, "status": "stale", "problem": problem}, status_code=503)
        return body

    @app.get("/metrics")
    def prometheus_metrics():
        # behind the API key like everything but /health: paths and error rates are the operator's business
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    @app.get("/metadata")
    def metadata() -> dict:
        return state["served"].metadata()

    @app.post("/reload")
    def reload() -> dict:
        if reopen is None:
            raise BadRequest(409, "this service was started without a model path to reload from")
        try:
            state["served"] = reopen()
        except RecdistillError as exc:  # the old model keeps serving
            raise BadRequest(409, f"reload failed, still serving the previous model: {exc}") from None
        return {"status": "reloaded", **state["served"].describe()}

    @app.get("/items/{item_id}")
    def item(item_id: int) -> dict:
        catalogue = state["served"].catalogue
        if not 1 <= item_id <= catalogue.num_items:
            raise BadRequest(404, f"unknown item id {item_id}: item ids run from 1 to {catalogue.num_items}")
        return {"item": item_id, "original_id": str(catalogue.original_ids[item_id]),
                "title": str(catalogue.titles[item_id])}

    return app
