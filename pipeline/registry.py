"""The model registry protocol for `options-pricer` (cfg.registry.model_name): the one module that
moves model versions between stages. Its pure half (plans, refusals, consistency, tag encoding)
is pipeline.registry_rules.

- register_candidate: a new version → stage Staging + alias `staging`; the previous Staging version
  is Archived and loses the alias.
- promote: the Staging version → Production + alias `production`, only with a passed gate verdict
  (or force=True and a reason) and a passed `check` when the caller gives one (pipeline.promote
  and model_deploy: the version prices its input example offline; force does not skip it). The
  previous Production version → Archived + alias `previous-production`; the promoted version
  loses alias `staging`.
- rollback (a reason is required): `previous-production` → Production + alias `production`; the
  current Production → Archived; alias `previous-production` is removed. A rollback undoes one
  promotion, once: a second rollback is refused (it would redeploy the version just rolled back);
  the next promotion sets `previous-production` again.

Stages (deprecated in MLflow 3, but the users' vocabulary) and aliases (what consumers resolve)
change together. A change is planned from a snapshot and applied op by op; if a call fails midway,
the applied ops are undone newest first and RegistryUnavailable names the failed step. Bad requests
raise RegistryRefusal before anything changes. History lives in the registry itself (model tags
`history.NNNNNN`), so it travels with the store and shows in the MLflow UI.
"""

from __future__ import annotations

import logging
import re
import time
import warnings
from collections.abc import Callable

import mlflow
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from pipeline import registry_rules as rules
from pipeline.errors import PipelineError, mlflow_not_found
from pipeline.public_text import without_credentials
from pipeline.registry_rules import Op, RegistryRefusal, Snapshot

__all__ = ["ALIASES", "Registry", "RegistryRefusal", "RegistryUnavailable"]

log = logging.getLogger(__name__)
ALIASES = ("staging", "production", "previous-production")
READY_TIMEOUT_S = 300.0


class RegistryUnavailable(PipelineError):
    """The registry could not be reached, or a call failed during a change (see the message)."""

    exit_code = 1


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:400] or type(exc).__name__


class _Guarded:
    """The MlflowClient as this module calls it: stage FutureWarnings silenced; not-found errors
    pass through as MlflowException; any other failure → RegistryUnavailable naming the call and
    the registry URI. Methods are looked up at call time (tests patch the client's)."""

    def __init__(self, registry: Registry):
        self._registry = registry

    def __getattr__(self, method: str):
        def call(*args, **kwargs):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", FutureWarning)
                try:
                    return getattr(self._registry.client, method)(*args, **kwargs)
                except Exception as exc:
                    if mlflow_not_found(exc):
                        raise
                    shown = ", ".join(map(repr, args[1:3]))  # args[0] is the model name
                    raise RegistryUnavailable(
                        f"model registry at {self._registry.uri}: {method}({shown}) failed: {_one_line(exc)}"
                    ) from exc

        return call


class Registry:
    """The protocol for one registered model, through `client` (default: MLflow's current URI)."""

    def __init__(self, model_name: str, client: mlflow.MlflowClient | None = None):
        self.name = model_name
        self.client = client or mlflow.MlflowClient()
        uri = getattr(self.client, "_registry_uri", None) or self.client.tracking_uri
        self.uri = without_credentials(uri)  # no credentials in messages
        self._mlflow = _Guarded(self)

    # -- reading -------------------------------------------------------------------------------
    def _snapshot(self) -> tuple[Snapshot, dict[str, ModelVersion]] | None:
        """The registry's state and its ModelVersions, or None when the model is not registered."""
        try:
            model = self._mlflow.get_registered_model(self.name)
        except MlflowException:
            return None
        versions = {
            str(mv.version): mv
            for mv in self._mlflow.search_model_versions(f"name = '{self.name}'")
        }
        snap = Snapshot(
            self.name,
            {v: mv.current_stage or "None" for v, mv in versions.items()},
            {a: str(v) for a, v in model.aliases.items()},  # search results may omit aliases
            dict(model.tags),
            {v: dict(mv.tags) for v, mv in versions.items()},
        )
        return snap, versions

    def _existing(self, what: str) -> Snapshot:
        found = self._snapshot()
        if found is None:
            raise RegistryRefusal(
                f"no registered model '{self.name}' in {self.uri}: nothing to {what} "
                "(python -m pipeline.model_train registers candidates)"
            )
        return found[0]

    def _version(self, version: str) -> ModelVersion | None:
        try:
            return self._mlflow.get_model_version(self.name, str(version))
        except MlflowException:
            return None

    def resolve(self, alias: str) -> ModelVersion | None:
        """The version holding `alias`, or None (get_model_version_by_alias: reliable on DB stores)."""
        try:
            return self._mlflow.get_model_version_by_alias(self.name, alias)
        except MlflowException:
            return None

    def verdict(self, version: str) -> dict | None:
        """{verdict, passed, reasons, evaluated_at, metrics} of `version`, or None (no verdict)."""
        mv = self._version(version)
        return rules.parse_verdict(mv.tags) if mv else None

    def history(self) -> list[dict]:
        """Every register/promote/rollback entry, oldest first ([] when nothing is registered)."""
        found = self._snapshot()
        return rules.parse_history(found[0].tags) if found else []

    def state(self) -> list[dict]:
        """One row per version: version, stage, aliases, verdict (passed|failed|None), run_id, created."""
        found = self._snapshot()
        if found is None:
            return []
        snap, versions = found
        rows = []
        for v in sorted(versions, key=int):
            verdict = rules.parse_verdict(snap.version_tags[v])
            rows.append(
                {
                    "version": v,
                    "stage": snap.stages[v],
                    "aliases": sorted(a for a, holder in snap.aliases.items() if holder == v),
                    "verdict": verdict["verdict"] if verdict else None,
                    "run_id": versions[v].run_id,
                    "created": rules.iso_ms(versions[v].creation_timestamp),
                }
            )
        return rows

    def check_consistency(self) -> list[str]:
        """Disagreements between stages and aliases ([] when they agree)."""
        return rules.disagreements(self.state())

    # -- changing ------------------------------------------------------------------------------
    def register_candidate(
        self, model_uri: str, run_id: str, tags: dict[str, str] | None = None
    ) -> ModelVersion:
        """A new version from `model_uri` (runs:/<run>/<name> or models:/<model id>), with `tags`,
        once READY → Staging + alias `staging`; the previous Staging version is Archived."""
        if self._snapshot() is None:
            self._mlflow.create_registered_model(self.name)
        snap = self._existing("register")
        try:
            source, model_id = self._source(model_uri)
            mv = self._mlflow.create_model_version(
                self.name, source, run_id=run_id, tags=tags, await_creation_for=0, model_id=model_id
            )
        except MlflowException as exc:  # only not-found gets here: a wrong URI or run id
            raise RegistryRefusal(
                f"cannot register {model_uri} (run {run_id}): {_one_line(exc)}"
            ) from exc
        version = str(mv.version)
        try:
            self._wait_ready(version)
            self._apply("register", rules.registration(snap, version, run_id))
        except PipelineError:
            try:  # compensate the creation too: a half-registered candidate must not linger
                self._mlflow.delete_model_version(self.name, version)
            except Exception as exc:
                log.error(
                    "could not delete the half-registered v%s of %s: %s", version, self.name, exc
                )
            raise
        return self._version(version)

    def record_verdict(
        self,
        version: str,
        passed: bool,
        reasons: list[str],
        metrics: dict[str, float] | None = None,
    ) -> None:
        """model_evaluate's gate verdict as tags on `version`. gate.verdict is cleared first and
        written last, so a failure midway leaves "no verdict" (promote refuses), never a stale one."""
        mv = self._version(version)
        if mv is None:
            raise RegistryRefusal(f"'{self.name}' has no version {version}: no verdict recorded")
        if "gate.verdict" in mv.tags:
            self._mlflow.delete_model_version_tag(self.name, str(version), "gate.verdict")
        for key, value in rules.verdict_tags(passed, reasons, metrics).items():
            self._mlflow.set_model_version_tag(self.name, str(version), key, value)
        log.info("gate verdict on %s v%s: %s", self.name, version, "passed" if passed else "failed")

    def promote(
        self,
        *,
        version: str | None = None,
        force: bool = False,
        reason: str | None = None,
        user: str | None = None,
        check: Callable[[str], None] | None = None,
    ) -> dict:
        """The Staging version (`version`, default: alias `staging`) → Production. Needs a passed
        gate verdict, or force and a reason. `check(version)`, when given, runs once the request
        is valid and before anything changes: it refuses the version by raising (force does not
        skip it). Returns the history entry {action, at, user, reason, from_version, to_version,
        forced, gate}; forced = force let a failed/missing verdict through."""
        ops, entry = rules.promotion(self._existing("promote"), version, force, reason, user)
        if check is not None:
            check(entry["to_version"])
        self._apply("promote", ops)
        return entry

    def rollback(self, *, reason: str | None = None, user: str | None = None) -> dict:
        """`previous-production` → Production; the current Production → Archived; the alias
        `previous-production` is removed (a second rollback is refused). Needs a reason. Returns
        the history entry (from = the version rolled back, to = the one restored)."""
        ops, entry = rules.rollback(self._existing("roll back"), reason, user)
        self._apply("rollback", ops)
        return entry

    def _apply(self, command: str, ops: list[Op]) -> None:
        """Apply `ops` in order; on a failure undo the applied ones newest first, then raise
        RegistryUnavailable naming the failed op and whether the previous state is back."""
        for i, op in enumerate(ops):
            try:
                self._do(op)
            except Exception as exc:
                left = self._undo(ops[: i + 1])  # the failed call may have landed (e.g. a timeout)
                restored = (
                    "the previous state was restored"
                    if not left
                    else "could not undo: "
                    + "; ".join(o.describe() for o in left)
                    + " (see python -m pipeline.history)"
                )
                raise RegistryUnavailable(
                    f"{command} failed at '{op.describe()}' "
                    f"(model registry at {self.uri}: {_one_line(exc)}); {restored}"
                ) from exc
            log.info("%s %s: %s", command, self.name, op.describe())

    def _undo(self, done: list[Op]) -> list[Op]:
        """Compensate `done` newest first, best effort; returns the ops that could not be undone."""
        failed = []
        for op in reversed(done):
            try:
                self._do(op.inverse())
            except Exception as exc:  # keep undoing the rest
                if not mlflow_not_found(exc):  # not found: e.g. the tag being written never landed
                    log.error("could not undo '%s': %s", op.describe(), exc)
                    failed.append(op)
        return failed

    def _do(self, op: Op) -> None:
        name, mlf = self.name, self._mlflow
        if op.kind == "stage":
            mlf.transition_model_version_stage(name, op.key, op.new or "None")
        elif op.kind == "alias" and op.new:
            mlf.set_registered_model_alias(name, op.key, op.new)
        elif op.kind == "alias":
            mlf.delete_registered_model_alias(name, op.key)
        elif op.new is not None:
            mlf.set_registered_model_tag(name, op.key, op.new)
        else:
            mlf.delete_registered_model_tag(name, op.key)

    def _wait_ready(self, version: str) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while (mv := self._version(version)) is None or mv.status != "READY":
            if (mv and mv.status == "FAILED_REGISTRATION") or time.monotonic() > deadline:
                raise RegistryUnavailable(
                    f"v{version} of '{self.name}' is {mv.status if mv else 'missing'}, not "
                    f"READY: {(mv and mv.status_message) or 'timed out'}"
                )
            time.sleep(0.5)

    def _source(self, model_uri: str) -> tuple[str, str | None]:
        """(source, logged-model id) of a model URI. MLflow 3 keeps a model logged in a run as a
        LoggedModel: runs:/<run>/<name> and models:/<model id> resolve to its artifact location,
        through our client (a DB store would look a models:/ source up via the *global* URI)."""
        if m := re.fullmatch(r"models:/(m-[0-9a-f]+)", model_uri):
            lm = self._mlflow.get_logged_model(m.group(1))
            return lm.artifact_location, lm.model_id
        if m := re.fullmatch(r"runs:/([^/]+)/(.+)", model_uri):
            run_id, name = m.groups()
            run = self._mlflow.get_run(run_id)
            where = f"source_run_id = '{run_id}' AND name = '{name}'"
            found = self._mlflow.search_logged_models([run.info.experiment_id], filter_string=where)
            if found:
                lm = max(found, key=lambda lm: lm.creation_timestamp)
                return lm.artifact_location, lm.model_id
            # no logged model: an MLflow 2 style model among the run's artifacts
            return f"{run.info.artifact_uri}/{name}", None
        return model_uri, None
