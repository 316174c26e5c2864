"""The pure half of pipeline.registry: what a register/promote/rollback must change, when it must
be refused, when stages and aliases disagree, and how verdicts and history are kept as tags.
No MLflow calls here: everything reads a `Snapshot` and returns `Op`s or data.

- A change is a list of `Op`s (`plan`); every Op has an exact inverse, which is how
  pipeline.registry undoes a half-applied change.
- Consistency (`disagreements`): alias `staging` ⇔ stage Staging and `production` ⇔ Production (at
  most one version each); `previous-production` → an Archived version.
- History: registered-model tags `history.000001`, ..., each a JSON entry
  {action, at, user, reason, from_version, to_version, forced, ...}; key order = time order.
- Gate verdict: version tags gate.verdict (passed|failed), gate.reasons (JSON list),
  gate.evaluated_at (UTC ISO), gate.metrics (JSON object).
"""

from __future__ import annotations

import datetime as dt
import getpass
import json
import logging
import math
import os
import re
from dataclasses import dataclass, replace
from typing import Any

from pipeline.errors import PipelineError

log = logging.getLogger(__name__)
ALIAS_STAGE = {"staging": "Staging", "production": "Production", "previous-production": "Archived"}
HISTORY_KEY = re.compile(r"history\.(\d+)")
MAX_REASON = 1000  # registered-model tag values are String(5000) on SQL stores
FORCE_HINT = "registry.force=true registry.reason='\"why it cannot wait\"'"


class RegistryRefusal(PipelineError):
    """A clear refusal: the request does not fit the registry's state; nothing was changed."""

    exit_code = 1


@dataclass(frozen=True)
class Op:
    """One change: kind "stage" (key = version), "alias" (key = alias) or "tag" (key = model tag);
    `new`/`old` = the value after/before (None: no stage, alias or tag)."""

    kind: str
    key: str
    new: str | None
    old: str | None

    def inverse(self) -> Op:
        return replace(self, new=self.old, old=self.new)

    def describe(self) -> str:
        if self.kind == "stage":
            return f"move v{self.key} from stage {self.old or 'None'} to {self.new or 'None'}"
        if self.kind == "alias":
            return (
                f"point alias '{self.key}' at v{self.new}"
                if self.new
                else f"remove alias '{self.key}'"
            )
        return f"{'write' if self.new else 'delete'} model tag {self.key}"


@dataclass
class Snapshot:
    """The registry before a change: model name, stage per version, alias → version, model tags,
    and the versions' own tags (the gate verdicts)."""

    name: str
    stages: dict[str, str]
    aliases: dict[str, str]
    tags: dict[str, str]
    version_tags: dict[str, dict[str, str]]


def plan(snap: Snapshot, stages: dict[str, str], aliases: dict[str, str | None]) -> list[Op]:
    """Ops turning `snap` into the wanted stages and aliases (None removes an alias). Versions
    move in (Staging/Production) before others move out (Archived), then aliases are set before
    any is removed, so a consumer resolving `production` always finds a version."""
    moves = [
        Op("stage", v, s, snap.stages.get(v)) for v, s in stages.items() if snap.stages.get(v) != s
    ]
    links = [
        Op("alias", a, v, snap.aliases.get(a))
        for a, v in aliases.items()
        if snap.aliases.get(a) != v
    ]
    return sorted(moves, key=lambda op: op.new == "Archived") + sorted(
        links, key=lambda op: op.new is None
    )


def _sole(snap: Snapshot, version: str, stage: str) -> dict[str, str]:
    """`version` into `stage`, every other version in that stage out to Archived."""
    return {v: "Archived" for v, s in snap.stages.items() if s == stage} | {version: stage}


def registration(snap: Snapshot, version: str, run_id: str) -> list[Op]:
    """A new `version` (not yet in `snap`) → Staging + alias `staging`; the old candidate is Archived."""
    entry = make_entry("register", snap.aliases.get("staging"), version, run_id=run_id)
    return [
        *plan(snap, _sole(snap, version, "Staging"), {"staging": version}),
        history_op(snap, entry),
    ]


def promotion(
    snap: Snapshot, version: str | None, force: bool, reason: str | None, user: str | None = None
) -> tuple[list[Op], dict]:
    """(ops, history entry) moving the Staging `version` (default: alias `staging`) to Production;
    RegistryRefusal when it has no passed verdict and no forced reason, or is not in Staging.
    `forced` in the entry = force let a failed or missing verdict through."""
    if force and not (reason or "").strip():
        raise RegistryRefusal(f"force needs a reason, recorded in the history: {FORCE_HINT}")
    staged = snap.aliases.get("staging")
    version = str(version) if version is not None else staged
    if version is None:
        raise RegistryRefusal(
            f"nothing in Staging to promote for '{snap.name}': "
            "train a candidate first (python -m pipeline.model_train)"
        )
    if version not in snap.stages:
        raise RegistryRefusal(f"v{version} of '{snap.name}' does not exist: {existing(snap)}")
    if snap.stages[version] != "Staging":
        raise RegistryRefusal(
            f"v{version} of '{snap.name}' is in stage {snap.stages[version]}, not Staging: only "
            f"the Staging candidate can be promoted ({f'v{staged}' if staged else 'nothing'} is "
            "in Staging)"
        )
    verdict = parse_verdict(snap.version_tags.get(version, {}))
    gate = verdict["verdict"] if verdict else "none"
    if gate != "passed" and not force:
        why = (
            "has no gate verdict: evaluate it first (python -m pipeline.model_evaluate)"
            if verdict is None
            else f"failed the gate ({'; '.join(verdict['reasons']) or 'no reasons recorded'})"
        )
        raise RegistryRefusal(f"v{version} {why}; to promote it anyway: {FORCE_HINT}")
    old = snap.aliases.get("production")
    aliases = {"production": version} | ({"previous-production": old} if old else {})
    if staged == version:
        aliases["staging"] = None
    entry = make_entry("promote", old, version, reason, user, forced=gate != "passed", gate=gate)
    return [
        *plan(snap, _sole(snap, version, "Production"), aliases),
        history_op(snap, entry),
    ], entry


def existing(snap: Snapshot) -> str:
    """The versions `snap` has, for a message about one it lacks."""
    if not snap.stages:
        return "the model has no versions yet (python -m pipeline.model_train registers one)"
    versions = sorted(snap.stages, key=int)
    listed = ", ".join(f"v{v} ({snap.stages[v]})" for v in versions[-10:])
    older = f" and {len(versions) - 10} older" if len(versions) > 10 else ""
    return f"its versions are {listed}{older}"


def rollback(snap: Snapshot, reason: str | None, user: str | None = None) -> tuple[list[Op], dict]:
    """(ops, history entry) restoring `previous-production` to Production, archiving the current
    one and removing the alias `previous-production`; RegistryRefusal without a reason or a target."""
    if not (reason or "").strip():
        raise RegistryRefusal(
            "rollback needs a reason, recorded in the history: registry.reason='\"why\"'"
        )
    target = snap.aliases.get("previous-production")
    if target is None:
        last = next(
            (e for e in reversed(parse_history(snap.tags)) if e.get("action") == "rollback"), None
        )
        why = (
            f"the last rollback used it ({describe(last)}); rolling back again would redeploy the "
            "version just rolled back"
            if last
            else "it is set when a promotion replaces a Production version"
        )
        raise RegistryRefusal(
            f"nothing to roll back to: no version of '{snap.name}' holds alias "
            f"'previous-production' ({why}). To deploy another model, promote a new candidate"
        )
    entry = make_entry("rollback", snap.aliases.get("production"), target, reason, user)
    aliases = {"production": target, "previous-production": None}
    return [*plan(snap, _sole(snap, target, "Production"), aliases), history_op(snap, entry)], entry


def history_op(snap: Snapshot, entry: dict) -> Op:
    """The Op appending `entry` to the history (the next free `history.NNNNNN` key)."""
    numbers = [int(m.group(1)) for k in snap.tags if (m := HISTORY_KEY.fullmatch(k))]
    return Op("tag", f"history.{max(numbers, default=0) + 1:06d}", json.dumps(entry), None)


def parse_history(tags: dict[str, str]) -> list[dict]:
    """History entries from registered-model tags, oldest first (unreadable ones skipped)."""
    entries = []
    for key in sorted(k for k in tags if HISTORY_KEY.fullmatch(k)):
        try:
            entries.append(json.loads(tags[key]))
        except json.JSONDecodeError:
            log.warning("history tag %s is not JSON; skipped", key)
    return entries


def make_entry(
    action: str,
    frm: str | None,
    to: str,
    reason: str | None = None,
    user: str | None = None,
    **extra: Any,
) -> dict:
    """A history entry: who (default $USER), when (UTC ISO), why, from → to, forced."""
    reason = (reason or "").strip()[:MAX_REASON] or None
    return {
        "action": action,
        "at": now(),
        "user": user or current_user(),
        "reason": reason,
        "from_version": frm,
        "to_version": to,
        "forced": False,
        **extra,
    }


def verdict_tags(
    passed: bool, reasons: list[str], metrics: dict[str, float] | None
) -> dict[str, str]:
    """Version tags for a gate verdict, gate.verdict last (it is written last)."""
    finite = {
        k: (float(v) if v is not None and math.isfinite(v) else None)
        for k, v in (metrics or {}).items()
    }
    return {
        "gate.reasons": json.dumps(list(reasons)),
        "gate.metrics": json.dumps(finite),
        "gate.evaluated_at": now(),
        "gate.verdict": "passed" if passed else "failed",
    }


def parse_verdict(tags: dict[str, str]) -> dict | None:
    """{verdict, passed, reasons, evaluated_at, metrics} from version tags; None without a verdict."""
    if "gate.verdict" not in tags:
        return None
    return {
        "verdict": tags["gate.verdict"],
        "passed": tags["gate.verdict"] == "passed",
        "reasons": json.loads(tags.get("gate.reasons") or "[]"),
        "evaluated_at": tags.get("gate.evaluated_at"),
        "metrics": json.loads(tags.get("gate.metrics") or "{}"),
    }


def disagreements(rows: list[dict]) -> list[str]:
    """Where stages and aliases disagree, given Registry.state() rows; [] when consistent."""
    problems = []
    for alias, stage in ALIAS_STAGE.items():
        problems += [
            f"alias '{alias}' points at v{r['version']}, whose stage is {r['stage']}, not {stage}"
            for r in rows
            if alias in r["aliases"] and r["stage"] != stage
        ]
        if alias == "previous-production":
            continue  # many versions are Archived; at most one of them holds the alias
        holders = [r["version"] for r in rows if r["stage"] == stage]
        if len(holders) > 1:
            problems.append(
                f"{len(holders)} versions in stage {stage} (v{', v'.join(holders)}); expected one at most"
            )
        problems += [
            f"v{r['version']} is in stage {stage} but alias '{alias}' does not point at it"
            for r in rows
            if r["stage"] == stage and alias not in r["aliases"]
        ]
    return problems


def describe(entry: dict) -> str:
    """One line for a history entry: `promote v1 → v2 by alice at <when> (forced ...): <why>`."""
    frm = f"v{entry['from_version']}" if entry.get("from_version") else "none"
    forced = " (forced past the gate)" if entry.get("forced") else ""
    why = f": {entry['reason']}" if entry.get("reason") else ""
    return f"{entry['action']} {frm} → v{entry['to_version']} by {entry['user']} at {entry['at']}{forced}{why}"


def current_user() -> str:
    try:
        return os.environ.get("USER") or getpass.getuser()
    except (OSError, KeyError):  # no passwd entry, e.g. in a container
        return "unknown"


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def iso_ms(millis: int | None) -> str | None:
    return (
        dt.datetime.fromtimestamp(millis / 1000, dt.UTC).isoformat(timespec="seconds")
        if millis
        else None
    )
