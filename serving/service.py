"""The pricing service: BentoML 1.4 serving the registry's Production options-pricer over HTTP.

    bentoml serve serving.service:OptionsPricingService          # or: make serve
    curl -s 127.0.0.1:3000/price -H 'Content-Type: application/json' -d '{"contracts": [{
      "underlying": "SPY", "option_type": "C", "strike": 600, "expiry": "2026-06-19",
      "quote_date": "2026-03-31", "spot": 600}]}'

Routes (serving/http_api.py, shared with the Bento's service serving/bento_service.py;
request/response models: serving/schemas.py; OpenAPI page at /, spec at /docs.json):
- POST /price: 1..10,000 contracts → iv, price and the answering model version per contract, in
  request order. Bad input → 400/413/415/422 {"error", "problems": [{index, field, message}]}
  (one bad contract rejects the whole request, every problem listed); 503 while no model is
  loaded. Error bodies name the problem without stack traces or file paths (`public_text`).
- GET /livez (BentoML), /readyz (200 once a model is loaded and passed its self-check), /metrics
  (BentoML's metrics plus options_pricer_predictions_total{model_version}).
- GET /model: the version served; POST /admin/reload: serve the alias's version now (200), or say
  why not (409: the old model keeps serving).

The work happens in serving/engine.py: `models:/<model_name>@<alias>` loaded in the background at
start-up and re-resolved every `poll_s` seconds (load, self-check, atomic swap), requests priced by
one worker thread that merges what queued up meanwhile. One worker process, so that a reload swaps
the model every request sees.

Settings: configs/serving/default.yaml, overridden by the environment: MLFLOW_TRACKING_URI,
SERVING_MODEL_NAME, SERVING_ALIAS, SERVING_POLL_S, SERVING_STATE_DIR (the daily market states each
contract is priced with: the state of the trading day before its quote date). Binds 127.0.0.1:3000 unless --host/--port say
otherwise.

This module stays light to import: `bentoml serve` imports it once in its supervising process
just to read the service's configuration; the model stack (pandas, XGBoost, MLflow, ~10 s to
import here) is imported by the worker only, when it builds the engine.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import bentoml

from serving.http_api import (  # noqa: F401  (PREDICTIONS, MAX_BODY_BYTES: for tests and readers)
    MAX_BODY_BYTES,
    PREDICTIONS,
    PricingRoutes,
    no_usage_tracking,
    one_openmp_thread,
    operations,
    quiet_logs,
)

if TYPE_CHECKING:
    from serving.engine import PricingEngine

log = logging.getLogger("serving")
REPO_ROOT = Path(__file__).resolve().parents[1]  # configs/ and paths.root (`repo_root`) hang here


@dataclass(frozen=True)
class Settings:
    """Where the model comes from and how the service runs (see the module docstring)."""

    tracking_uri: str
    model_name: str
    alias: str
    poll_s: float
    host: str
    port: int
    batch_max_contracts: int
    timeout_s: float
    state_dir: str
    max_state_age_days: int
    alert_sink: str | None = None


def load_settings(environ: dict[str, str] | None = None) -> Settings:
    """configs/ (the serving group, mlflow.tracking_uri) with the environment's overrides.

    Composed without pipeline.config (the service imports only the pricing core): its typed schema
    is left out and Settings types the keys the service reads instead (a misspelled or mistyped
    key in configs/serving still fails here, naming it)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.config_store import ConfigStore
    from omegaconf import OmegaConf

    environ = os.environ if environ is None else environ
    if not OmegaConf.has_resolver("repo_root"):  # as pipeline.config.register_configs does
        OmegaConf.register_new_resolver("repo_root", lambda: str(REPO_ROOT))
    # config.yaml's defaults list starts with `config_schema`, which pipeline.config's
    # register_configs() stores in Hydra's ConfigStore; unless it has (in this process), an empty
    # entry stands in for it here (Hydra cannot delete a non-group entry: `~config_schema` fails)
    store = ConfigStore.instance()
    if "config_schema.yaml" not in store.repo:
        store.store(name="config_schema", node={})
    with initialize_config_dir(str(REPO_ROOT / "configs"), version_base="1.3", job_name="serving"):
        cfg = compose("config")
    typed = OmegaConf.merge(
        OmegaConf.structured(Settings),
        {
            "tracking_uri": cfg.mlflow.tracking_uri,
            **OmegaConf.to_container(cfg.serving, resolve=True),
        },
    )
    settings = Settings(**OmegaConf.to_container(typed))
    overrides = {"tracking_uri": environ.get("MLFLOW_TRACKING_URI"),
                 "model_name": environ.get("SERVING_MODEL_NAME"),
                 "alias": environ.get("SERVING_ALIAS"),
                 "poll_s": environ.get("SERVING_POLL_S"),
                 "state_dir": environ.get("SERVING_STATE_DIR")}  # fmt: skip
    overrides = {k: v for k, v in overrides.items() if v}
    if "poll_s" in overrides:
        try:
            overrides["poll_s"] = float(overrides["poll_s"])
        except ValueError:
            raise ValueError(
                f"SERVING_POLL_S={overrides['poll_s']!r} is not a number of seconds"
            ) from None
    return dataclasses.replace(settings, **overrides)


def build_engine(settings: Settings) -> PricingEngine:
    """The engine on the MLflow registry, started (tests replace this to inject a model)."""
    one_openmp_thread()
    from serving.engine import PricingEngine
    from serving.model_holder import RegistrySource

    source = RegistrySource(settings.tracking_uri, settings.model_name, settings.alias,
                            settings.state_dir, settings.max_state_age_days,
                            alert_sink=settings.alert_sink)  # fmt: skip
    engine = PricingEngine(source, settings.poll_s, settings.batch_max_contracts)
    poll = f"every {settings.poll_s:g} s" if settings.poll_s else "off"
    log.info("serving %s@%s from %s (registry poll: %s)", settings.model_name, settings.alias,
             settings.tracking_uri, poll)  # fmt: skip
    return engine.start()


SETTINGS = load_settings()
quiet_logs()
no_usage_tracking()


@bentoml.asgi_app(operations, path="/")
@bentoml.service(
    name="options_pricing",
    workers=1,  # one process: /admin/reload swaps the model for every request
    http={"host": SETTINGS.host, "port": SETTINGS.port},
    traffic={"timeout": SETTINGS.timeout_s},
)
class OptionsPricingService(PricingRoutes):
    """Prices option contracts with the MLflow registry's `@production` options-pricer
    (routes: serving/http_api.py)."""

    def __init__(self) -> None:
        self.engine = build_engine(SETTINGS)
