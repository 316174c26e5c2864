"""The retrain trigger: a pure policy over the monitor's summary and the configured thresholds.

Retrain when either
- the Production model's IV RMSE is worse than its reference RMSE (its holdout RMSE, recorded at
  registration) by **more than** `rmse_degradation` (0.10 = 10%) on at least `breach_days` of the
  last `window_days` days this version was monitored, the monitored day included (the summary's
  `rmse_history`: the earlier days' `rmse_change`). 1 of 1 judges the day alone. One volatile day
  lifts a day's IV RMSE by 30-70% on the default market and passes; a regime change persists.
  Detection then takes at most `breach_days - 1` trading days after the change; or
- the share of the model's features that drifted (Evidently's per-column drift tests) is **more
  than** `drift_share`.

A retrain that is due is **deferred** while the last candidate retrained for this Production
version failed the gate fewer than `failed_gate_backoff_days` trading days ago (0: never
deferred). A failed gate is a review for a person (the original plan: manual review); after a
regime change the candidates keep failing until the new regime is in their training folds, and a
retrain each day would ask for a review each day. The deferral is a reason like the others.

"More than" is strict: a figure exactly at its threshold does not trigger (compared with a
relative tolerance of 1e-9, so 0.11 vs 0.10 × 1.10 counts as "at", whatever the float rounding).
Every decision carries one reason per check, fired or not, so the log says why nothing happened
as clearly as why something did. A figure that could not be computed (no scored rows, no
reference) never triggers, and its reason says what is missing.

**A change** is a day whose feature drift is over its limit, or whose IV RMSE jumped more than
`change_rmse_jump` (+100%) over its reference in one day (volatile days lift it 13-78%; a shock
several-fold). The jump needs no second day and fires on the change day itself: the features of
a day are the state of the day before, so most of a shock's drift shows only the day after.

**After a change** (`decide`, given the summary's `change_point`, `pending_change`, `date`): a
retrain due on the very day of the change waits one trading day (a candidate is judged
on the days *after* a change; the summary records `pending_change` and the next day retrains
even if the drift has eased); a change dated after the last failed gate lifts the failed-gate
backoff (the backoff is for the same regime failing again, not for a new one).

**The change point** (`change_point`) of a retrain on drift: the day drift crossed its
threshold, i.e. the first day of the current run of days with more than `drift_share` of the
features drifted. Walking back from today over the days this Production version was monitored
(a day not monitored is skipped, not a break), the run goes on while each day is over the limit
(`day_breaches`, each day judged alone); a day within it ends the run. On a shock it is the
shock day; in a run of deferred retrains, still that day. The monitor passes it to model_train
as `holdout_start`, so a candidate retrained after a change is judged on the days from it on,
not on a holdout straddling it (on which the model trained before the change looks better than
any candidate, and the gate fails). A retrain on the IV RMSE alone dates no change (None: the
usual holdout, the last holdout_days): a rise without drift is the model losing ground on the
same market, often 2 volatile days in 3; a 1-2 day holdout from it made noisier gates, and a
promoted candidate's reference (its holdout) one volatile day, against which the next shock's
drift no longer showed (the integration test's tiny replay then missed its shock).
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

TOLERANCE = 1e-9
CHANGE_SIGNALS = ("drift", "jump")  # the signals that date a change (see change_point)


@dataclass(frozen=True)
class Thresholds:
    """The monitor's limits; no defaults here: configs/monitor/default.yaml holds them, read with
    `Thresholds.from_config(cfg.monitor)`."""

    rmse_degradation: float  # relative: 0.10 = RMSE more than 10% above its reference
    drift_share: float  # share of the model's features whose drift test failed
    breach_days: int  # days above the RMSE limit, among the last window_days, to retrain
    window_days: int
    failed_gate_backoff_days: int  # no retrain until this many trading days after a failed gate
    change_rmse_jump: float  # one day's IV RMSE above reference × (1 + this): a change (inf: off)

    def __post_init__(self) -> None:
        if not 1 <= self.breach_days <= self.window_days:
            raise ValueError(f"need 1 <= breach_days ({self.breach_days}) <= window_days "
                             f"({self.window_days})")  # fmt: skip
        if self.failed_gate_backoff_days < 0:
            raise ValueError(f"failed_gate_backoff_days={self.failed_gate_backoff_days} must be "
                             ">= 0")  # fmt: skip

    @classmethod
    def from_config(cls, cfg: Any) -> Thresholds:
        """From the monitor's config node (every key required; change_rmse_jump 0: off)."""
        return cls(float(cfg.rmse_degradation), float(cfg.drift_share), int(cfg.breach_days),
                   int(cfg.window_days), int(cfg.failed_gate_backoff_days),
                   float(cfg.change_rmse_jump) or math.inf)  # fmt: skip


@dataclass(frozen=True)
class Decision:
    retrain: bool
    reasons: list[str] = field(default_factory=list)
    fired: tuple[str, ...] = ()  # the signals over their limit today: "rmse", "drift"


def _above(value: float, limit: float) -> bool:
    """value > limit, where equal within TOLERANCE is not above."""
    return value > limit and not math.isclose(value, limit, rel_tol=TOLERANCE, abs_tol=1e-12)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and math.isfinite(value)


def _mark(fired: bool) -> str:
    return "[trigger]" if fired else "[ok]"


def rmse_check(rmse: Any, reference: Any, allowed: float) -> tuple[bool, str]:
    """(degraded, reason) for the IV RMSE against its reference."""
    if not _finite(rmse):
        return False, "IV RMSE: not computed (no scored rows): no performance signal"
    if not _finite(reference) or reference <= 0:
        return False, "IV RMSE: no reference RMSE for the Production version: cannot judge"
    degraded = _above(rmse, reference * (1.0 + allowed))
    verdict = "more than" if degraded else "within"
    return degraded, (
        f"IV RMSE {rmse:.5f} vs reference {reference:.5f}: {rmse / reference - 1.0:+.1%}, "
        f"{verdict} the allowed {allowed:+.1%}"
    )


def drift_check(share: Any, drifted: list[str], allowed: float) -> tuple[bool, str]:
    """(drifted, reason) for the share of drifted features."""
    if not _finite(share):
        return False, "feature drift: not computed: no drift signal"
    over = _above(share, allowed)
    names = f" ({', '.join(drifted)})" if drifted else ""
    verdict = "above" if over else "within"
    return over, f"feature drift share {share:.0%}{names}, {verdict} the allowed {allowed:.0%}"


def persistence_check(
    today: bool, history: list[Any], allowed: float, breach_days: int, window_days: int
) -> tuple[bool, str]:
    """(persistent, reason): the day breaches and, counted with the previous window_days - 1
    days' `rmse_change` (oldest first; a missing or non-finite one is no breach), at least
    breach_days of the window do."""
    earlier = history[-(window_days - 1) :] if window_days > 1 else []
    breaches = int(today) + sum(_finite(c) and _above(c, allowed) for c in earlier)
    days = 1 + len(earlier)
    return today and breaches >= breach_days, (
        f"above the limit on {breaches} of the last {days} monitored day(s) "
        f"(retrain needs {breach_days} of {window_days}, today included)"
    )


def jump_check(change: Any, jump: float) -> tuple[bool, str | None]:
    """(jumped, reason): one day's IV RMSE more than (1 + jump) × its reference is a change of
    regime, not a volatile day (those lift it by 13-78% on the default market), so it needs no
    second day; no reason when the rule is off (jump = inf)."""
    if not math.isfinite(jump):
        return False, None
    if not _finite(change):
        return False, "one-day IV RMSE jump: not computed"
    jumped = _above(change, jump)
    return jumped, (f"IV RMSE {change:+.0%} over its reference today, "
                    f"{'above' if jumped else 'within'} the {jump:+.0%} that marks a change in "
                    "one day (monitor.change_rmse_jump)")  # fmt: skip


def backoff_check(failed: Any, backoff_days: int) -> tuple[bool, str | None]:
    """(deferred, reason) from `failed` = {"date", "version", "days_ago"} of the last candidate
    retrained for this Production version that failed the gate (None: there is none)."""
    if not failed or backoff_days < 1:
        return False, None
    ago = int(failed["days_ago"])
    if ago >= backoff_days:
        return False, None
    return True, (
        f"retrain deferred: candidate v{failed['version']} retrained on {failed['date']} failed "
        f"the gate {ago} trading day(s) ago; the next retrain waits until "
        f"{backoff_days} have passed (monitor.failed_gate_backoff_days)"
    )


def decide(summary: Mapping[str, Any], thresholds: Thresholds) -> Decision:
    """Retrain or not, from the summary's `rmse`, `reference_rmse`, `rmse_history`, `drift_share`,
    `drifted_columns` and `last_failed_gate` (see pipeline.monitor), with one reason per check
    ("[trigger] …"/"[ok] …"; "[deferred] …" when a due retrain waits after a failed gate)."""
    degraded, rmse_reason = rmse_check(
        summary.get("rmse"), summary.get("reference_rmse"), thresholds.rmse_degradation
    )
    if thresholds.window_days > 1:
        degraded, persistence = persistence_check(
            degraded, list(summary.get("rmse_history") or []), thresholds.rmse_degradation,
            thresholds.breach_days, thresholds.window_days,
        )  # fmt: skip
        rmse_reason = f"{rmse_reason}; {persistence}"
    drifted, drift_reason = drift_check(
        summary.get("drift_share"),
        list(summary.get("drifted_columns") or []),
        thresholds.drift_share,
    )
    reasons = [f"{_mark(degraded)} {rmse_reason}", f"{_mark(drifted)} {drift_reason}"]
    jumped, jump_reason = jump_check(summary.get("rmse_change"), thresholds.change_rmse_jump)
    if jump_reason:
        reasons.append(f"{_mark(jumped)} {jump_reason}")
    fired = tuple(name for name, on in (("rmse", degraded), ("drift", drifted), ("jump", jumped))
                  if on)  # fmt: skip
    drifted = drifted or jumped  # a one-day jump is a change, like drift over its limit
    change = summary.get("change_point")  # first day of the current run of drift (monitor)
    pending = summary.get("pending_change")  # a change whose retrain waited for a day after it
    if pending and not (degraded or drifted):
        return Decision(True, [*reasons, f"[trigger] the retrain for the change of {pending} "
                               "waited for a day after it: that day is today"], fired)  # fmt: skip
    if degraded or drifted:
        failed = summary.get("last_failed_gate")
        if drifted and change and failed and str(change) > str(failed.get("date")):
            reasons.append(f"[trigger] a new change on {change}, after the gate that failed on "
                           f"{failed['date']}: the failed-gate backoff does not hold it")  # fmt: skip
        else:
            deferred, why = backoff_check(failed, thresholds.failed_gate_backoff_days)
            if deferred:
                return Decision(False, [*reasons, f"[deferred] {why}"], fired)
        if drifted and change and str(change) == str(summary.get("date")):
            return Decision(False, [*reasons, f"[deferred] the change began today ({change}): "
                                    "a candidate is judged on the days after a change, so it "
                                    "retrains on the next trading day"], fired)  # fmt: skip
    return Decision(degraded or drifted, reasons, fired)


def day_breaches(summary: Mapping[str, Any], thresholds: Thresholds) -> dict[str, bool]:
    """{"rmse", "drift"}: whether one monitored day's own figures are over each limit, judged alone
    (no persistence window, no backoff): its `rmse_change` above `rmse_degradation`, its
    `drift_share` above `drift_share` (strictly, as in `decide`). A missing or non-finite figure
    is no breach."""
    change, share = summary.get("rmse_change"), summary.get("drift_share")
    return {"rmse": _finite(change) and _above(change, thresholds.rmse_degradation),
            "drift": _finite(share) and _above(share, thresholds.drift_share),
            "jump": _finite(change) and _above(change, thresholds.change_rmse_jump)}  # fmt: skip


def run_start(days: Sequence[tuple[dt.date, bool]]) -> dt.date | None:
    """The first day of the current run of breaching days: `days` are (day, breached), the
    newest is today. Walking back from the newest, the run goes on while each day breached; its
    earliest day is returned. None when the newest did not breach or `days` is empty."""
    first = None
    for day, breached in sorted(days, reverse=True):
        if not breached:
            break
        first = day
    return first


def change_point(
    days: Sequence[tuple[dt.date, Mapping[str, bool]]],
    fired: Sequence[str],
    signals: Sequence[str] = CHANGE_SIGNALS,
) -> dt.date | None:
    """The change point of a retrain (see the module docstring): `days` are (day, day_breaches)
    of the monitored days, today (the newest) included; `fired` the signals that fired today
    (Decision.fired). For each of `signals` that fired, the first day of its current run
    (`run_start`); the latest of those. None when none of `signals` fired: no change dated."""
    starts = [run_start([(day, bool(flags.get(signal))) for day, flags in days])
              for signal in signals if signal in fired]  # fmt: skip
    found = [d for d in starts if d is not None]
    return max(found) if found else None
