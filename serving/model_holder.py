"""The model the service answers with, and how it is replaced without a restart.

`ModelHolder.reload()` is the one way a model gets in (start-up, the registry poll, POST
/admin/reload all call it):

1. resolve the alias (`production`) in the registry → version;
2. same version as served → nothing to do;
3. load that version fully (mlflow.pyfunc) and **self-check** it: its logged input example goes
   through the request schema and the serving path, and must come out finite and equal to the
   pyfunc model's own `predict` of the same example (MLflow's path, signature enforcement
   included): a model that cannot price its own example never serves;
4. swap: one reference assignment. A request takes `holder.current` once and prices with that
   object to the end, so in-flight requests finish on the old model while new ones get the new.

A failed resolve, load or self-check leaves the served model as it is and raises `ReloadFailed`
naming why. Reloads are serialised by a lock; pricing never waits for it.

Start-up fallback: when nothing is served yet and the alias's version fails its load or
self-check, the holder serves the version holding `previous-production` (the one a rollback would
restore), once it passes the same self-check, raises an alert (monitoring.alerts, kind
deploy_rollback) and still raises `ReloadFailed` for the alias's version. `/model` then names the
fallback, the version it stands in for and why (`LoadedModel.info()["fallback"]`). Once the alias
holds the fallback's version (a rollback) it serves as that alias again; a new version holding the
alias replaces it as usual. With no fallback to serve, the alert says that nothing is served.

`RegistryPoller` runs `reload` at start-up and then every `poll_s` seconds on a daemon thread,
so a promotion or a rollback in the registry is picked up without a call. It does not retry a
version that already failed (POST /admin/reload does) and logs each distinct failure once.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import pkgutil
import threading
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np
import pandas as pd

from pipeline.errors import mlflow_not_found
from pipeline.model.loading import load_pricer
from pipeline.public_text import public_text, without_credentials
from serving.errors import RegistryUnavailable, ReloadFailed, SelfCheckFailed
from serving.pricing import FIELDS, Pricer, contracts_frame, predict
from serving.schemas import Rejection, parse_price_request

log = logging.getLogger("serving.model")
IV_TOLERANCE = 1e-9  # serving path vs pyfunc predict: the same code, so equal up to rounding
PRICE_RTOL = 1e-9
FALLBACK_ALIAS = "previous-production"  # what pipeline.rollback restores


@dataclass(frozen=True)
class Candidate:
    """A version loaded from the registry, not yet checked."""

    version: str
    run_id: str | None
    pricer: Pricer
    example: pd.DataFrame | None  # the logged input example (raw contract rows)
    offline: pd.DataFrame | None  # the pyfunc model's predict(example): iv, price


@dataclass(frozen=True)
class LoadedModel:
    """A checked version, as the service serves it."""

    model_name: str
    alias: str
    version: str
    run_id: str | None
    pricer: Pricer
    underlyings: frozenset[str]
    loaded_at: dt.datetime
    # serving in place of the alias's version: {"instead_of": {"alias", "version"}, "reason"}
    fallback: dict[str, Any] | None = None

    def info(self) -> dict:
        return {"model_name": self.model_name, "alias": self.alias, "version": self.version,
                "run_id": self.run_id, "loaded_at": self.loaded_at.isoformat(timespec="seconds"),
                "fallback": self.fallback}  # fmt: skip


@dataclass(frozen=True)
class Reloaded:
    previous_version: str | None
    version: str
    reloaded: bool


class ModelSource(Protocol):
    """Where versions come from: the MLflow registry in the service (RegistrySource), the BentoML
    model store in a Bento (StoreSource), a fake in unit tests."""

    model_name: str
    alias: str

    def resolve(self) -> tuple[str, str | None] | None:
        """(version, run_id) holding the alias, or None when no version holds it."""

    def load(self, version: str) -> Candidate: ...

    # Optional (RegistrySource has both; without them there is no start-up fallback, and the
    # holder's alerts are only logged):
    # def resolve_fallback(self) -> tuple[str, str | None] | None:  the FALLBACK_ALIAS holder
    # def alert(self, message: str, details: dict) -> None:  raise an alert


class RegistrySource:
    """`models:/<name>/<version>` of the version holding `@alias`, from the MLflow registry at
    `tracking_uri` (resolve first, then load that exact version: a promotion between the two
    calls cannot mix versions up)."""

    def __init__(
        self,
        tracking_uri: str,
        model_name: str,
        alias: str,
        state_dir: str | None = None,
        max_state_age_days: int = 2,
        alert_sink: str | None = None,
    ):
        import mlflow

        self.tracking_uri, self.model_name, self.alias = tracking_uri, model_name, alias
        self.alert_sink = alert_sink
        # each contract is priced with the daily market state before its quote date (a new day's
        # state is read when it appears: no reload needed); see pipeline.model.pyfunc_model
        self.model_config = {"state_dir": str(state_dir or ""),
                             "max_state_age_days": int(max_state_age_days)}  # fmt: skip
        mlflow.set_tracking_uri(tracking_uri)  # pyfunc.load_model resolves models:/ through it
        # the registry's own MlflowClient, not pipeline.registry (the service imports only the
        # pricing core, .importlinter): resolving an alias is its one call here
        self.client = mlflow.MlflowClient(tracking_uri)
        uri = getattr(self.client, "_registry_uri", None) or tracking_uri
        # in messages, without credentials (as pipeline.registry shows it)
        self.registry_uri = without_credentials(uri)

    def resolve(self) -> tuple[str, str | None] | None:
        return self._holder(self.alias)

    def resolve_fallback(self) -> tuple[str, str | None] | None:
        return self._holder(FALLBACK_ALIAS)

    def _holder(self, alias: str) -> tuple[str, str | None] | None:
        """(version, run_id) holding `alias`; None when no version holds it or the model is not
        registered; RegistryUnavailable, naming the registry and the call, for any other failure
        (the holder then keeps serving what it serves and says the registry did not answer)."""
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)  # MLflow 3's stage deprecation
                mv = self.client.get_model_version_by_alias(self.model_name, alias)
        except Exception as exc:
            if mlflow_not_found(exc):
                return None
            failure = " ".join(str(exc).split())[:400] or type(exc).__name__
            raise RegistryUnavailable(
                f"model registry at {self.registry_uri}: get_model_version_by_alias("
                f"{self.model_name!r}, {alias!r}) failed: {failure}"
            ) from exc
        return str(mv.version), mv.run_id

    def alert(self, message: str, details: dict) -> None:
        """Through the alert sink configs/serving names (`alert_sink`, "module:function", loaded
        by name: serving imports no monitoring code); without one, the service's log only."""
        if not self.alert_sink:
            log.warning("deploy_rollback alert (no serving.alert_sink): %s %s", message, details)
            return
        pkgutil.resolve_name(self.alert_sink)("deploy_rollback", message, details)

    def load(self, version: str) -> Candidate:
        return load_candidate(f"models:/{self.model_name}/{version}", version, self.model_config)


class StoreSource:
    """The one version a Bento holds (serving/bento_service.py): an MLflow model folder in
    BentoML's model store, no registry. `resolve` always names that version; POST /admin/reload
    therefore never changes it."""

    alias = "bento"  # what /model names as the pointer that chose the version

    def __init__(self, model_name: str, version: str, run_id: str | None, model_dir: str,
                 state_dir: str, max_state_age_days: int):  # fmt: skip
        self.model_name, self.version, self.run_id = model_name, str(version), run_id
        self.model_dir = str(model_dir)
        self.model_config = {"state_dir": str(state_dir),
                             "max_state_age_days": int(max_state_age_days)}  # fmt: skip

    def resolve(self) -> tuple[str, str | None]:
        return self.version, self.run_id

    def load(self, version: str) -> Candidate:
        return load_candidate(self.model_dir, version, self.model_config)


def load_candidate(uri: str, version: str, model_config: dict) -> Candidate:
    """The MLflow pyfunc model at `uri` (models:/..., or a local model folder) loaded with
    `model_config`, with its logged input example and its own prediction of it (self_check's
    reference)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's notices about the loaded model's env
        model = load_pricer(uri, model_config)
    example = model.input_example
    example = pd.DataFrame(example) if example is not None else None
    offline = pd.DataFrame(model.predict(example)) if example is not None else None
    run_id = model.metadata.run_id
    return Candidate(version, run_id, model.unwrap_python_model(), example, offline)


def self_check(candidate: Candidate) -> None:
    """The version's logged input example, sent through the request schema and the serving path,
    must price finite and equal to the pyfunc model's own prediction; else SelfCheckFailed."""
    v = candidate.version
    if candidate.example is None or candidate.offline is None or candidate.example.empty:
        raise SelfCheckFailed(f"v{v} has no logged input example to check it with")
    body = json.dumps({"contracts": example_contracts(candidate.example)}).encode()
    try:
        contracts = parse_price_request(body).contracts
        iv, price = predict(candidate.pricer, contracts_frame(contracts))
    except Rejection as exc:
        raise SelfCheckFailed(f"v{v} cannot price its own input example: {exc}") from None
    except Exception as exc:  # a broken model: any failure means "do not serve it"
        raise SelfCheckFailed(
            f"v{v} failed on its input example: {type(exc).__name__}: {exc}"
        ) from None
    expected_iv = candidate.offline["iv"].to_numpy(float)
    expected_price = candidate.offline["price"].to_numpy(float)
    if len(iv) != len(expected_iv):
        raise SelfCheckFailed(f"v{v}: {len(iv)} answers for {len(expected_iv)} example contracts")
    iv_gap = float(np.max(np.abs(iv - expected_iv)))
    price_ok = np.allclose(price, expected_price, rtol=PRICE_RTOL, atol=1e-12)
    if not (iv_gap <= IV_TOLERANCE and price_ok):  # NaN gaps fail too
        raise SelfCheckFailed(f"v{v}: the serving path's IVs differ from the model's own "
                              f"prediction of its input example by up to {iv_gap:.2e}")  # fmt: skip


def example_contracts(example: pd.DataFrame) -> list[dict]:
    """The example's rows as JSON contracts (the fields the request schema knows)."""
    rows = []
    for row in example[[c for c in FIELDS if c in example.columns]].to_dict(orient="records"):
        contract = {}
        for key, value in row.items():
            if key in ("expiry", "quote_date"):
                value = pd.Timestamp(value).strftime("%Y-%m-%d")
            elif isinstance(value, np.generic):
                value = value.item()
            if isinstance(value, float) and np.isnan(value):
                value = None
            contract[key] = value
        rows.append(contract)
    return rows


@dataclass
class ModelHolder:
    """The served model (`current`), replaced only by `reload` (see the module docstring)."""

    source: ModelSource
    check: Callable[[Candidate], None] = self_check
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(dt.UTC)
    current: LoadedModel | None = None
    failed: dict[str, str] = field(default_factory=dict)  # version → why it was refused
    last_error: str | None = None  # why the last reload failed (None after a success)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def serving(self) -> str | None:
        model = self.current
        return model.version if model else None

    def reload(self, retry_failed: bool = True) -> Reloaded:
        """Serve the version that now holds the alias (see the module docstring).
        `retry_failed=False` (the poll) does not load again a version that already failed."""
        with self._lock:
            try:
                outcome = self._reload(retry_failed)
            except ReloadFailed as exc:
                self.last_error = str(exc)
                raise
            self.last_error = None
            return outcome

    def _reload(self, retry_failed: bool) -> Reloaded:
        before = self.serving
        version, run_id = self._resolve(before)
        if version == before:
            self._adopt()
            return Reloaded(before, before, reloaded=False)
        if not retry_failed and version in self.failed:
            raise ReloadFailed(self._refusal(version, before))
        try:
            candidate = self._load_checked(version, before)
        except ReloadFailed:
            if before is None:  # start-up: nothing serves, so a fallback is better than nothing
                self._fall_back(version)
                raise ReloadFailed(self._refusal(version, before)) from None
            raise
        self.current = self._loaded(self.source.alias, version, run_id, candidate)
        return Reloaded(before, version, reloaded=True)

    def _loaded(
        self,
        alias: str,
        version: str,
        run_id: str | None,
        candidate: Candidate,
        fallback: dict | None = None,
    ) -> LoadedModel:
        return LoadedModel(
            self.source.model_name, alias, version, run_id or candidate.run_id, candidate.pricer,
            frozenset(candidate.pricer.state.underlyings), self.clock(), fallback,
        )  # fmt: skip

    def _adopt(self) -> None:
        """A fallback whose version now holds the alias (a rollback) serves as the alias."""
        model = self.current
        if model is not None and model.fallback is not None:
            self.current = replace(model, alias=self.source.alias, fallback=None)
            log.info("v%s now holds @%s: no longer a fallback", model.version, self.source.alias)

    def _fall_back(self, failed: str) -> None:
        """Serve the FALLBACK_ALIAS version in place of the `failed` one if it passes its own
        self-check; alert either way."""
        name, alias = self.source.model_name, self.source.alias
        why = public_text(self.failed[failed])
        lost = f"{name}@{alias} v{failed} failed its load or self-check at start-up ({why})"
        resolve = getattr(self.source, "resolve_fallback", None)  # optional: see ModelSource
        target, missing = None, f"no other version holds @{FALLBACK_ALIAS}"
        try:
            target = resolve() if resolve is not None else None
        except Exception as exc:  # the registry answered a moment ago; say so and carry on
            missing = f"@{FALLBACK_ALIAS} could not be resolved ({public_text(str(exc))})"
        if target is None or target[0] == failed:
            self._alert(f"{lost} and {missing}: the pricing service serves nothing (readyz 503)",
                        failed_version=failed)  # fmt: skip
            return
        version, run_id = target
        try:
            candidate = self._load_checked(version, None)
        except ReloadFailed:
            self._alert(f"{lost}, and so did its fallback v{version} (@{FALLBACK_ALIAS}: "
                        f"{public_text(self.failed[version])}): the pricing service serves "
                        "nothing (readyz 503)", failed_version=failed)  # fmt: skip
            return
        self._alert(f"{lost}: the pricing service serves v{version} (@{FALLBACK_ALIAS}) in its "
                    f"place until @{alias} holds a version that passes",
                    failed_version=failed, rolled_back_to=version)  # fmt: skip
        fallback = {"instead_of": {"alias": alias, "version": failed}, "reason": why}
        self.current = self._loaded(FALLBACK_ALIAS, version, run_id, candidate, fallback)

    def _alert(self, message: str, **details: Any) -> None:
        log.error("%s", message)
        alert = getattr(self.source, "alert", None)
        if alert is None:
            return
        try:
            alert(message, details)
        except Exception:  # an alert must never stop the service from serving
            log.exception("could not raise the alert")

    def _load_checked(self, version: str, before: str | None) -> Candidate:
        """Load and self-check `version`; ReloadFailed (remembered in `failed`) if either fails."""
        try:
            candidate = self.source.load(version)
            self.check(candidate)
        except Exception as exc:  # whatever breaks, the version does not serve
            why = str(exc) if isinstance(exc, SelfCheckFailed) else f"{type(exc).__name__}: {exc}"
            self.failed[version] = " ".join(why.split())[:500]
            raise ReloadFailed(self._refusal(version, before)) from None
        self.failed.pop(version, None)
        return candidate

    def _refusal(self, version: str, before: str | None) -> str:
        return (f"v{version} of {self.source.model_name} (@{self.source.alias}) was not loaded: "
                f"{self.failed[version]}; {self._still(before)}")  # fmt: skip

    def _resolve(self, before: str | None) -> tuple[str, str | None]:
        name, alias = self.source.model_name, self.source.alias
        try:
            target = self.source.resolve()
        except Exception as exc:
            raise ReloadFailed(f"the registry did not answer for {name}@{alias}: {exc}; "
                               f"{self._still(before)}") from None  # fmt: skip
        if target is None:
            raise ReloadFailed(
                f"no version of {name} holds the alias @{alias}; {self._still(before)}"
            )
        return target

    def _still(self, before: str | None) -> str:
        model = self.current
        if model is not None and model.fallback is not None:
            return f"serving the fallback v{model.version} (@{model.alias})"
        return f"still serving v{before}" if before else "no model is loaded"


class RegistryPoller:
    """Calls `holder.reload` now and then every `poll_s` seconds (0: only now) on a daemon
    thread, logging swaps and each distinct failure once."""

    def __init__(self, holder: ModelHolder, poll_s: float):
        self.holder, self.poll_s = holder, poll_s
        self._stop = threading.Event()
        self._last_failure: str | None = None
        self._thread = threading.Thread(target=self._run, name="registry-poll", daemon=True)

    def start(self) -> RegistryPoller:
        self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        self._thread.join(timeout_s)

    def poll_once(self) -> None:
        try:
            outcome = self.holder.reload(retry_failed=False)
        except ReloadFailed as exc:
            if str(exc) != self._last_failure:
                log.warning("%s", exc)
                self._last_failure = str(exc)
            return
        except Exception:  # the poll must outlive anything a reload throws
            log.exception("registry poll failed")
            return
        self._last_failure = None
        if outcome.reloaded:
            log.info("now serving v%s (was %s)", outcome.version,
                     f"v{outcome.previous_version}" if outcome.previous_version else "none")  # fmt: skip

    def _run(self) -> None:
        self.poll_once()
        while self.poll_s > 0 and not self._stop.wait(self.poll_s):
            self.poll_once()
