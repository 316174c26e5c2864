"""The pricing service inside a Bento: one pinned options-pricer version, no registry, no repository.

    make bento                      # or: make bento VERSION=3 (default: the Production version)
    bentoml serve options_pricing:<version>        # from any folder; 127.0.0.1:3000

`make bento` (pipeline/bento.py) imports a registry version into BentoML's model store (the MLflow
model folder and the daily market states it prices with) and builds a Bento around this module;
the Bento records which model it holds and the serving settings as build arguments
(`bentoml.use_arguments`, restored by `bentoml serve <tag>`).

The routes, request/response bodies and error bodies are the registry-following service's
(serving/http_api.py; the contract: serving/service.py's docstring), and so is the engine: the
model is loaded and self-checked the same way (serving/model_holder.py, `StoreSource`) before
/readyz answers 200. Differences: the version never changes (no registry poll; POST /admin/reload
answers `reloaded: false`), GET /model names the alias `bento`, and there is no start-up fallback
to a previous version. SERVING_STATE_DIR points the model at a folder of newer daily market states
than the ones bundled at build time.
"""

from __future__ import annotations

import logging
import os
from typing import TYPE_CHECKING

import bentoml
from bentoml.exceptions import InvalidArgument
from pydantic import BaseModel, ValidationError

from serving.http_api import (
    PricingRoutes,
    no_usage_tracking,
    one_openmp_thread,
    operations,
    quiet_logs,
)

if TYPE_CHECKING:
    from serving.engine import PricingEngine

log = logging.getLogger("serving")
STATE_DIR_ENV = "SERVING_STATE_DIR"


class BentoArgs(BaseModel):
    """What `make bento` records in the Bento (configs/serving/default.yaml's values at build
    time, and the BentoML model the Bento holds)."""

    model_tag: str
    host: str
    port: int
    timeout_s: float
    batch_max_contracts: int
    max_state_age_days: int


def bento_args() -> BentoArgs:
    """The build arguments; a clear error when this module is served outside a Bento."""
    try:
        return bentoml.use_arguments(BentoArgs)
    except InvalidArgument as exc:
        cause = exc.__cause__
        errors = cause.errors() if isinstance(cause, ValidationError) else []
        missing = ", ".join(str(e["loc"][0]) for e in errors) or str(exc)
        raise RuntimeError(
            f"serving.bento_service runs inside a Bento built by `make bento` (build arguments "
            f"missing or invalid: {missing}); to serve the registry's model use `make serve`"
        ) from None


def build_engine(stored, args: BentoArgs) -> PricingEngine:
    """The engine on the Bento's model (`stored`: bentoml.Model written by pipeline/bento.py),
    started: load and self-check in the background, no poll."""
    one_openmp_thread()
    from serving.engine import PricingEngine
    from serving.model_holder import StoreSource

    meta = stored.info.metadata
    state_dir = os.environ.get(STATE_DIR_ENV) or stored.path_of(meta["state_dir"])
    source = StoreSource(meta["model_name"], meta["registry_version"], meta.get("run_id"),
                         stored.path_of(meta["mlflow_model"]), state_dir,
                         args.max_state_age_days)  # fmt: skip
    log.info("serving %s v%s from the Bento's model %s (no registry)", source.model_name,
             source.version, stored.tag)  # fmt: skip
    return PricingEngine(source, 0, args.batch_max_contracts).start()


ARGS = bento_args()
quiet_logs()
no_usage_tracking()


@bentoml.asgi_app(operations, path="/")
@bentoml.service(
    name="options_pricing",
    workers=1,  # one process, as the registry-following service
    http={"host": ARGS.host, "port": ARGS.port},
    traffic={"timeout": ARGS.timeout_s},
)
class OptionsPricingBento(PricingRoutes):
    """Prices option contracts with the options-pricer version this Bento holds
    (routes: serving/http_api.py)."""

    pricer_model = bentoml.models.BentoModel(ARGS.model_tag)  # packed into the Bento

    def __init__(self) -> None:
        self.engine = build_engine(self.pricer_model, ARGS)
