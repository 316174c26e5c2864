"""Health checks of a deployment: does the pricing service answer with the Production model?

`PricingService` is a thin HTTP client for serving/service.py's contract (GET /readyz, GET /model,
POST /admin/reload, POST /price). `health_check` runs the deploy checks in order and returns a
`Health` with one line per check:

1. ready: /readyz answers 200 (the service loaded a model and its self-check passed);
2. version: /model names the expected registry version (a failed reload leaves the old one);
3. golden: the service's IV for each golden contract equals the offline prediction of the same
   registered version within `tolerance` (absolute, in vol units), and the service prices all of
   them.

Golden contracts are the version's logged input example plus a sample of the newest feature file,
so they exercise the underlyings and the contract shapes the model saw.

`offline_check` needs no service: it loads a registered version as the service does and prices its
logged input example through the served path (pipeline.model.packaging); every contract must get a
finite IV > 0 and a finite price >= 0. pipeline.promote and model_deploy run it before a version
becomes Production (`promotion_check`: force does not skip it), and model_deploy before it rolls
Production out. Check lines and errors go into incidents, alerts and refusals through
`public_text`: one line, no traceback, no absolute path.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass, field

import mlflow
import numpy as np
import pandas as pd
import requests

from pipeline.errors import PipelineError
from pipeline.public_text import public_text as _public_text
from pipeline.registry_rules import RegistryRefusal

CONTRACT_FIELDS = ("underlying", "option_type", "strike", "expiry", "quote_date", "spot", "option")


class ServiceUnreachable(Exception):
    """No HTTP answer from the service (not running, wrong URL)."""


@dataclass
class Health:
    """Outcome of the checks: `passed`, one line per check, and the figures they read."""

    passed: bool
    checks: list[str]
    figures: dict[str, float] = field(default_factory=dict)


class PricingService:
    """The pricing service at `url`, as model_deploy calls it."""

    def __init__(self, url: str, timeout_s: float = 30.0):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s

    def _call(self, method: str, path: str, **kwargs) -> requests.Response:
        try:
            return requests.request(method, self.url + path, timeout=self.timeout_s, **kwargs)
        except requests.RequestException as exc:
            raise ServiceUnreachable(f"pricing service at {self.url} did not answer {path}: "
                                     f"{type(exc).__name__}") from None  # fmt: skip

    def ready(self) -> bool:
        return self._call("GET", "/readyz").status_code == 200

    def model(self) -> dict:
        return self._call("GET", "/model").json()

    def reload(self) -> tuple[int, dict]:
        """POST /admin/reload → (status, body); 409 means the new version was refused."""
        response = self._call("POST", "/admin/reload", json={})
        return response.status_code, _json(response)

    def price(self, contracts: pd.DataFrame) -> tuple[int, dict]:
        payload = {"contracts": [_jsonable(row) for row in contracts.to_dict(orient="records")]}
        response = self._call("POST", "/price", json=payload)
        return response.status_code, _json(response)


def _json(response: requests.Response) -> dict:
    try:
        return response.json()
    except ValueError:
        return {"error": response.text[:300]}


def _jsonable(row: dict) -> dict:
    out = {}
    for key, value in row.items():
        if isinstance(value, (pd.Timestamp, dt.date)):
            value = value.strftime("%Y-%m-%d")
        elif isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, float) and not np.isfinite(value):
            value = None
        out[key] = value
    return out


def golden_contracts(
    model_uri: str, features: pd.DataFrame | None, n: int, seed: int
) -> pd.DataFrame:
    """The version's input example plus `n` reliable contracts sampled from `features`."""
    local = mlflow.artifacts.download_artifacts(model_uri)
    example = mlflow.models.Model.load(local).load_input_example(local)
    frames = [pd.DataFrame(example)] if example is not None else []
    if features is not None and len(features) and n > 0:
        pool = (
            features[features["iv_reliable"].astype(bool)]
            if "iv_reliable" in features
            else features
        )
        frames.append(pool.sample(min(n, len(pool)), random_state=seed))
    golden = pd.concat(frames, ignore_index=True)
    golden = golden[[c for c in CONTRACT_FIELDS if c in golden.columns]]
    for col in ("expiry", "quote_date"):
        golden[col] = pd.to_datetime(golden[col])
    return golden.reset_index(drop=True)


def offline_iv(
    model_uri: str, golden: pd.DataFrame, state_dir=None, max_state_age_days: int = 2
) -> np.ndarray:
    """The registered version's own IVs for the golden contracts, computed in this process with
    the daily market states the service reads (`state_dir`)."""
    from pipeline.model.packaging import served_model

    model = served_model(model_uri, state_dir or "", max_state_age_days)
    return pd.DataFrame(model.predict(golden))["iv"].to_numpy(float)


def offline_check(
    model_uri: str, version: str, state_dir=None, max_state_age_days: int = 2
) -> Health:
    """Load registry `version` (`model_uri`) as the service loads it, with the daily market states
    of `state_dir`, and price its logged input example through the served path: one line
    `offline: ...`, passed when every contract gets a finite IV > 0 and a finite price >= 0."""
    from pipeline.model.packaging import predict_served, served_model

    try:
        model = served_model(model_uri, state_dir or "", max_state_age_days)
    except Exception as exc:  # whatever stops the load stops the service's load too
        return Health(False, [f"offline: v{version} could not be loaded: {error_text(exc)}"])
    example = model.input_example
    if example is None or len(example) == 0:
        return Health(False, [f"offline: v{version} has no logged input example to check it with"])
    try:
        priced = predict_served(model, pd.DataFrame(example), f"v{version}")
    except Exception as exc:  # a broken model: any failure means "do not serve it"
        return Health(
            False, [f"offline: v{version} failed on its input example: {error_text(exc)}"]
        )
    iv, price = priced["iv"].to_numpy(float), priced["price"].to_numpy(float)
    bad = np.flatnonzero(~(np.isfinite(iv) & (iv > 0) & np.isfinite(price) & (price >= 0)))
    if len(bad):
        rows = ", ".join(f"row {i}: iv {iv[i]:.6g}, price {price[i]:.6g}" for i in bad[:5])
        return Health(False, [f"offline: v{version} priced {len(bad)} of its {len(iv)} input "
                              f"example contracts out of range (IV must be finite and > 0, "
                              f"price finite and >= 0): {rows}"])  # fmt: skip
    return Health(
        True,
        [f"offline: v{version} priced its {len(iv)} input example contracts "
         f"(IV {iv.min():.4f} to {iv.max():.4f})"],
        {"offline_example_contracts": len(iv)},
    )  # fmt: skip


def promotion_check(
    model_name: str, state_dir=None, max_state_age_days: int = 2
) -> Callable[[str], None]:
    """A `check` for Registry.promote: RegistryRefusal when the version fails `offline_check`."""

    def check(version: str) -> None:
        uri = f"models:/{model_name}/{version}"
        health = offline_check(uri, version, state_dir, max_state_age_days)
        if not health.passed:
            raise RegistryRefusal(
                f"v{version} of '{model_name}' cannot become Production: {health.checks[-1]}. "
                "Nothing was changed (force overrides a failed gate verdict, not this check)"
            )

    return check


def public_text(text, limit: int = 300) -> str:
    """pipeline.public_text.public_text, at most 300 characters: an incident line or an alert."""
    return _public_text(text, limit)


def error_text(exc: BaseException) -> str:
    """An exception as `public_text`: the message of our own errors, `Type: message` otherwise."""
    if isinstance(exc, PipelineError):
        return public_text(str(exc))
    return public_text(f"{type(exc).__name__}: {exc}")


def health_check(
    service: PricingService,
    version: str,
    golden: pd.DataFrame,
    expected_iv: Callable[[], np.ndarray],
    tolerance: float,
) -> Health:
    """Run the checks against `service`, expecting registry `version` to answer `expected_iv()`
    (e.g. offline_iv, called only when the service got that far) for the `golden` contracts.
    Stops at the first failed check."""
    checks: list[str] = []
    if not service.ready():
        return Health(False, [f"readyz: not ready at {service.url}"])
    checks.append("readyz: ready")
    serving = str(service.model().get("version"))
    if serving != str(version):
        return Health(
            False, [*checks, f"version: the service answers with v{serving}, expected v{version}"]
        )
    checks.append(f"version: the service answers with v{version}")
    status, body = service.price(golden)
    if status != 200:
        return Health(False, [*checks, f"golden: /price answered {status}: "
                                       f"{public_text(body.get('error', body))}"])  # fmt: skip
    results = body.get("results") or []
    served = np.array([r.get("iv", np.nan) for r in results], float)
    answered_by = sorted({str(r.get("model_version")) for r in results})
    if len(served) != len(golden):
        return Health(
            False, [*checks, f"golden: {len(served)} answers for {len(golden)} contracts"]
        )
    try:
        expected = np.asarray(expected_iv(), float)
    except Exception as exc:  # a version that cannot price offline cannot be verified
        return Health(False, [*checks, f"golden: v{version} fails offline: {error_text(exc)}"])
    diff = np.abs(served - expected)
    worst = float(np.max(diff)) if np.isfinite(diff).all() else float("inf")
    ok = worst <= tolerance and answered_by == [str(version)]
    checks.append(
        f"golden: {len(golden)} contracts priced by v{'/'.join(answered_by)}, "
        f"max |IV service − offline| {worst:.2e} (tolerance {tolerance:.0e})"
    )
    return Health(ok, checks, {"golden_max_abs_iv_diff": worst, "golden_contracts": len(golden)})


def dumps(health: Health) -> str:
    return json.dumps({"passed": health.passed, "checks": health.checks, **health.figures})
