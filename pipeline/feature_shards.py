"""feature_engineer per (day, shard of underlyings): main's Dask executor with `main.shards` > 1.

    assign(assignment, names, shards) -> {underlying: shard}      which shard builds which names
    compute_shard(cfg, day, shard, shards, previous) -> ShardDay  a Dask task per (day, shard)
    publish(cfg, day, shard_days) -> TaskOutcome                  a Dask task per day

Why: a day's features read the previous day's market state, so feature_engineer's days form a
chain; as one task per day it runs serially, and a second worker only helps with fetch and
validate. But the task is per underlying throughout (pipeline.features.build_features: a
contract's features read its own underlying's state; a state's tables are per underlying, fitted
on that underlying's quotes). So the underlyings are split into shards, each its own chain over
the days: shard k of day D builds on shard k of day D-1, whose state it is handed in memory, and
a day's shards run on different workers. Per day, `publish` then writes exactly what
feature_engineer writes, as feature_engineer (the same TaskSpec, checkpoint, MLflow run and
files: feature_engineer.publish), the shards' features in the local path's row order and their
states merged (MarketState.merged). No shard waits for a publication: the chains run ahead while
the days are published in date order.

Shards: underlyings are dealt round-robin in sorted order (the first to shard 0, the second to
shard 1, ...) when a chain first sees them, and keep their shard along the chain (a shard needs
its own underlyings' previous state); names first seen later go, in sorted order, to the shard
with the fewest names. The names are those of the day's spot history and quotes, which every
shard reads whole: every shard works out the same assignment.

The local path's files exactly: a shard reads the day's whole validated quotes and spot history
(realised vols: each underlying's as the whole day gives it), builds the features of its own
underlyings' quotes on the previous state as the local path reads it (through its JSON form:
MarketState.as_read), and nothing in build_features depends on other underlyings' rows (the
smile fit batches slices by their own size: pipeline.quant.smile).
tests/integration/test_main_dask.py compares the files and frames.

Checkpoints, as on the local path: the day's feature_engineer checkpoint decides, when the day is
published. A shard checks it beforehand when it can, i.e. when the previous day's state on disk
is final (the range's first day, or after a reused day), and computes nothing if it holds. After
a day it computed it computes (that day's state file is not published yet); the publication
drops the result if the checkpoint holds after all. Failures: a shard that fails, or that has no
previous day to build on, hands over nothing, and its day's publication runs feature_engineer
whole: an error is raised, and its failed run recorded, as on the local path, at its day.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import pandas as pd
from omegaconf import DictConfig

from pipeline import feature_engineer
from pipeline.feature_engineer import DayFeatures
from pipeline.market_state import MarketState
from pipeline.runtime import TaskOutcome, execute, reusable, task_context

SPEC = feature_engineer.SPEC


def assign(assignment: Mapping[str, int], names: Iterable[str], shards: int) -> dict[str, int]:
    """`assignment` (underlying → shard) with the `names` it lacks added: in sorted order, each
    to the shard with the fewest names (the lowest such shard); from none, round-robin."""
    out = dict(assignment)
    sizes = [0] * shards
    for shard in out.values():
        sizes[shard] += 1
    for name in sorted(set(names) - out.keys()):
        shard = sizes.index(min(sizes))
        out[name] = shard
        sizes[shard] += 1
    return out


def members(assignment: Mapping[str, int], shard: int) -> set[str]:
    """The underlyings of `shard`."""
    return {name for name, k in assignment.items() if k == shard}


@dataclass(frozen=True)
class ShardDay:
    """One shard's day: its features and state (`computed`), or nothing: the day's checkpoint
    held (`reused`), or the shard did not compute (`why`)."""

    date: dt.date
    assignment: dict[str, int] = field(default_factory=dict)  # the same in every shard
    computed: DayFeatures | None = None
    reused: bool = False
    why: str = ""


def compute_shard(
    cfg: DictConfig, day: dt.date, shard: int, shards: int, previous: ShardDay | None
) -> ShardDay:
    """Shard `shard` of `shards` of `day`, on its `previous` day (None: the range's first day).
    Never raises: a failure is handed over (`why`) for the publication to raise."""
    ctx = task_context(SPEC, cfg, day)
    try:
        if previous is not None and previous.computed is not None:
            state = previous.computed.state.as_read()
            source, assignment = feature_engineer.state_source(state), previous.assignment
        elif previous is not None and not previous.reused:
            return ShardDay(day, why=f"shard {shard} of {previous.date} was not computed")
        elif reusable(SPEC, cfg, day):  # the previous state on disk is final: the check holds
            return ShardDay(day, reused=True)
        else:
            (state, source), assignment = feature_engineer.previous_state(ctx), {}
        inputs = feature_engineer.read_inputs(ctx)
        assignment = assign(assignment, inputs.spots["underlying"], shards)
        mine = members(assignment, shard)
        computed = feature_engineer.day_features(ctx, inputs, state, source, mine)
    except Exception as exc:  # publish runs the day whole: the error is raised there, recorded
        return ShardDay(day, why=f"{type(exc).__name__}: {exc}")
    return ShardDay(day, assignment, computed)


def merged(parts: Sequence[DayFeatures]) -> DayFeatures:
    """The whole day from its shards' DayFeatures: the features in the validated quotes' row
    order (each shard keeps its quotes' row labels), the states merged."""
    frames = [p.features for p in parts if len(p.features)] or [parts[0].features]
    features = pd.concat(frames).sort_index()
    state = MarketState.merged([p.state for p in parts], features)
    first = parts[0]
    return DayFeatures(features, state, first.rows_in, first.history_days, first.source)


def publish(cfg: DictConfig, day: dt.date, shard_days: Sequence[ShardDay]) -> TaskOutcome:
    """feature_engineer of `day` (inside main's run, as `execute` in main): reused if its
    checkpoint holds, else the shards' merged result written, or, if a shard did not compute,
    the day computed whole."""
    parts = [s.computed for s in shard_days]
    if all(p is not None for p in parts):
        whole, note = merged(parts), f"features and state computed by {len(parts)} shards"
    else:
        missing = [f"shard {k}: {s.why or 'its checkpoint held when it started'}"
                   for k, s in enumerate(shard_days) if s.computed is None]  # fmt: skip
        whole, note = None, "computed whole, not by shards: " + "; ".join(missing)
    with feature_engineer.computed_elsewhere(whole, note):
        return execute(SPEC, cfg, day, record_skip=False)
