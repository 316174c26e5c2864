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
        return Health(
            False, [*checks, f"golden: /price answered {status}: {body.get('error', body)}"]
        )
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
        return Health(False, [*checks, f"golden: v{version} fails offline: {type(exc).__name__}: "
                                       f"{' '.join(str(exc).split())[:200]}"])  # fmt: skip
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
