"""The HTTP face both pricing services share: the routes, their bodies and the metrics counter.

`PricingRoutes` is the service class without its BentoML decoration: POST /price (a BentoML API,
typed by serving/schemas.py), /readyz, the shutdown hook; `operations` holds the plain Starlette
routes GET /model and POST /admin/reload. A service subclasses `PricingRoutes`, sets
`self.engine` (a serving.engine.PricingEngine) in its __init__, and is decorated with
`bentoml.service` and `bentoml.asgi_app(operations, path="/")`:

- serving/service.py: the engine follows the MLflow registry's `@production` alias (`make serve`);
- serving/bento_service.py: the engine serves the one version a Bento holds (`make bento`).

The request/response contract is serving/service.py's docstring. This module stays light to
import (no pandas, MLflow or XGBoost): `bentoml serve` imports it in its supervising process.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import warnings
from typing import TYPE_CHECKING

import anyio
import bentoml
from _bentoml_sdk.io_models import IOMixin
from prometheus_client import Counter
from pydantic import PrivateAttr
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from pipeline.public_text import public_text
from serving import schemas
from serving.errors import NotLoaded, ReloadFailed
from serving.schemas import (
    MAX_BODY_BYTES,
    MAX_CONTRACTS,
    Rejection,
    check_content_type,
    parse_price_request,
)

if TYPE_CHECKING:
    from serving.engine import PricingEngine

log = logging.getLogger("serving")


def quiet_logs() -> None:
    """Our log lines at INFO; MLflow's load-time notices and deprecation warnings off."""
    logging.getLogger("serving").setLevel(logging.INFO)
    for noisy in ("mlflow", "alembic", "urllib3", "git"):
        logging.getLogger(noisy).setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=FutureWarning, module="mlflow")
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")


def no_usage_tracking() -> None:
    """No usage statistics to BentoML from `bentoml serve` (it reads this after importing the
    service) or to MLflow from the engine; an explicit value in the environment still wins."""
    os.environ.setdefault("BENTOML_DO_NOT_TRACK", "True")
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def one_openmp_thread() -> None:
    """One OpenMP thread per model call; call it before XGBoost loads OpenMP (i.e. before
    importing serving.engine). OpenMP keeps a thread team per calling thread, and the model is
    called from two (the loader's self-check and the batcher): between calls the idle teams spin,
    and on a 2-core machine that made single-contract requests 3x slower (measured: p50 28 ms
    with 1 thread, 90 ms with 2). Concurrency comes from batching instead. An OMP_NUM_THREADS
    already set wins."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")


# contracts priced, by the registry version that priced them (exposed with the _total suffix)
PREDICTIONS = Counter(
    "options_pricer_predictions",
    "Contracts priced by the options-pricer, by registry version",
    labelnames=["model_version"],
)


class PriceRequest(IOMixin, schemas.PriceRequest):
    """POST /price's body (schemas.PriceRequest) as BentoML reads it. Left to itself, BentoML answers a pydantic error
    with its own 400 body ({"error": "1 validation error for Input", "detail": [...]}) and logs a
    traceback per bad request; this reads and validates the body itself (serving.schemas), so
    bad input gets the contract's 400/413/422 body and the server log stays quiet."""

    _rejection: Rejection | None = PrivateAttr(default=None)

    @classmethod
    async def from_http_request(cls, request: Request, serde) -> PriceRequest:
        try:
            check_content_type(request.headers.get("content-type"))
            parsed = parse_price_request(await read_body(request))
        except Rejection as rejection:
            body = cls.model_construct(contracts=[])
            body._rejection = rejection
            return body
        return cls.model_construct(contracts=parsed.contracts)


class PriceResponse(IOMixin, schemas.PriceResponse):
    """POST /price's 200 body, under its own name in the OpenAPI page."""


async def read_body(request: Request) -> bytes:
    """The request body, refused (413) as soon as it passes MAX_BODY_BYTES."""
    too_big = (f"request body over the limit of {MAX_BODY_BYTES:,} bytes; "
               f"send at most {MAX_CONTRACTS:,} contracts")  # fmt: skip
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise Rejection(413, too_big)
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise Rejection(413, too_big)
        chunks.append(chunk)
    return b"".join(chunks)


# An error body names the problem, never the machine: no stack trace (XGBoost appends its native
# one to its messages), no file path (a library's location, a registry's sqlite file). The full
# text stays in the server log: the registry poll logs each failed load, /admin/reload its own.
def error_response(status: int, error: str, **fields) -> JSONResponse:
    """{"error": ..., **fields} with `error` made public (public_text)."""
    return JSONResponse({"error": public_text(error), **fields}, status_code=status)


def rejected(rejection: Rejection) -> JSONResponse:
    body = rejection.body.model_dump()
    body["error"] = public_text(body["error"])
    for problem in body["problems"]:
        problem["message"] = public_text(problem["message"])
    return JSONResponse(body, status_code=rejection.status)


def priced(version: str, iv, price) -> Response:
    """The 200 body, serialised directly: no pydantic object per contract (10,000 per batch)."""
    results = [{"iv": i, "price": p, "model_version": version}
               for i, p in zip(iv.tolist(), price.tolist(), strict=True)]  # fmt: skip
    body = json.dumps({"model_version": version, "results": results}, allow_nan=False)
    return Response(body, media_type="application/json")


def current_engine() -> PricingEngine:
    return bentoml.get_current_service().engine


async def model_info(request: Request) -> JSONResponse:
    """GET /model: the version served (503 while none is)."""
    try:
        info = current_engine().model().info()
    except NotLoaded as exc:
        return error_response(503, str(exc))
    if info.get("fallback"):  # serving previous-production: why the alias's version failed
        info["fallback"] = {**info["fallback"], "reason": public_text(info["fallback"]["reason"])}
    return JSONResponse(info)


async def admin_reload(request: Request) -> JSONResponse:
    """POST /admin/reload (body {} or none): serve the alias's version now (200), or say why
    not (409; the old model keeps serving). Runs off the event loop: pricing goes on."""
    engine = current_engine()
    try:
        outcome = await anyio.to_thread.run_sync(engine.reload)
    except ReloadFailed as exc:
        log.warning("POST /admin/reload refused: %s", exc)  # in full; the body is public_text's
        return error_response(409, str(exc), version=engine.holder.serving)
    if outcome.reloaded:
        log.info("reload: now serving v%s (was %s)", outcome.version, outcome.previous_version)
    return JSONResponse(dataclasses.asdict(outcome))


# operations routes next to the BentoML API (plain Starlette: GET, and not in the OpenAPI page)
operations = Starlette(routes=[Route("/model", model_info, methods=["GET"]),
                               Route("/admin/reload", admin_reload, methods=["POST"])])  # fmt: skip


class PricingRoutes:
    """POST /price, /readyz and the shutdown hook of a pricing service whose __init__ sets
    `self.engine` (see the module docstring)."""

    engine: PricingEngine

    def __is_ready__(self) -> bool:
        """/readyz: a model is loaded, which means it passed its self-check."""
        return self.engine.ready

    @bentoml.api(route="/price")
    async def price(self, request: PriceRequest, /) -> PriceResponse:
        """Price 1 to 10,000 contracts with one model version; results in request order.

        One invalid contract rejects the whole request (nothing is priced): 422 listing every
        problem by contract index and field. Malformed JSON or not an object: 400. Body over
        16 MB: 413. Content-Type other than application/json: 415. No model loaded yet: 503."""
        if request._rejection is not None:
            return rejected(request._rejection)
        try:
            result = await self.engine.price(request.contracts)
        except Rejection as rejection:
            return rejected(rejection)
        except NotLoaded as exc:
            return error_response(503, str(exc))
        PREDICTIONS.labels(model_version=result.version).inc(len(result.iv))
        return priced(result.version, result.iv, result.price)

    @bentoml.on_shutdown
    def _stop(self) -> None:
        self.engine.stop()
