"""The evaluation summary as a typed contract: what reports/evaluation_metrics.json holds.

model_evaluate builds an `EvaluationSummary` from evaluation.summarise's content, adds the model
references and the gate verdict, and writes the JSON from it (`write_summary`); the gate and the
stakeholder report read its fields (`read_summary`). The JSON keys are the ones model_evaluate has
always written, so every existing file reads; a file from before a field existed (no `scopes`,
`days`, `rows_finite`, `bootstrap_unit`, ...) reads with that field's default, and is written back
with the keys it had (only fields that were set are dumped).

Units as in pipeline.evaluation: IVs are decimals (0.012 = 1.2 vol points), shares fractions;
a figure that could not be computed (NaN) is None (null in the file).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError, model_validator

from pipeline.artifacts import write_json
from pipeline.errors import DataError

Figure = float | None  # a metric; None where it could not be computed
Interval = tuple[Figure, Figure]  # a bootstrap CI (low, high)
SKILL_KEY = re.compile(r"^(iv|price)_skill_vs_(?P<ref>\w+)$")


class _Record(BaseModel):
    """A frozen record that refuses keys it does not know (a typo is an error naming it)."""

    model_config = ConfigDict(frozen=True, extra="forbid")


class ModelMetrics(BaseModel):
    """One predictor's figures on a set of rows (evaluation.METRIC_KEYS), with its skills
    `iv_skill_vs_<ref>` / `price_skill_vs_<ref>` (1 − RMSE / ref's RMSE) as extra keys."""

    model_config = ConfigDict(frozen=True, extra="allow")

    n: Figure = None
    iv_rmse: Figure = None
    iv_mae: Figure = None
    iv_bias: Figure = None
    iv_r2: Figure = None
    price_rmse: Figure = None
    price_mae: Figure = None
    price_mape: Figure = None
    price_r2: Figure = None
    inside_spread_share: Figure = None

    @model_validator(mode="after")
    def _only_skills_as_extras(self) -> ModelMetrics:
        for key, value in (self.model_extra or {}).items():
            if not SKILL_KEY.match(key):
                raise ValueError(f"unknown metric {key!r} (not a figure nor a *_skill_vs_* key)")
            if value is not None and not isinstance(value, int | float):
                raise ValueError(f"metric {key!r} is {value!r}, not a number")
        return self

    def skills(self, kind: str = "iv") -> dict[str, Figure]:
        """{reference: skill} of the `kind` (iv | price) skills, sorted by reference."""
        found = {}
        for key, value in (self.model_extra or {}).items():
            m = SKILL_KEY.match(key)
            if m and m[1] == kind:
                found[m["ref"]] = None if value is None else float(value)
        return dict(sorted(found.items()))

    def skill_vs(self, ref: str, kind: str = "iv") -> Figure:
        return self.skills(kind).get(ref)


class BucketRow(ModelMetrics):
    """One predictor's figures in one moneyness × maturity bucket."""

    model: str
    moneyness: str
    maturity: str


class Holdout(_Record):
    start: str | None = None
    end: str | None = None
    days: int = 0
    dates: list[str] = []
    rows: int = 0
    rows_scored: int = 0  # the headline rows: informative (OTM + ATM) and finite
    rows_finite: int | None = None


class EvaluationConfig(_Record):
    min_mid_for_mape: float | None = None
    bootstrap_samples: int | None = None
    confidence: float | None = None
    seed: int | None = None
    bootstrap_unit: str = "date"  # or "date x underlying" on a short holdout
    headline_rows: str | None = None


class QuantCheck(_Record):
    """A no-arbitrage check on one source's prices (pipeline.quant.checks summary)."""

    share: float
    checked: float
    violations: float | None = None
    share_beyond_spread: float | None = None  # only with bid/ask: breaches beyond the spreads
    mean_abs_residual: float | None = None
    max_abs_residual: float | None = None
    non_finite: float | None = None

    @property
    def tradable_share(self) -> float:
        """The share the gate judges: beyond the quoted spreads when known, else any breach."""
        return self.share if self.share_beyond_spread is None else self.share_beyond_spread


class ModelRef(_Record):
    name: str | None = None
    version: str
    run_id: str | None = None


class VerdictRecord(_Record):
    """The gate's verdict as written beside the figures it read."""

    passed: bool
    reasons: list[str]
    metrics: dict[str, float] = {}


class EvaluationSummary(_Record):
    """reports/evaluation_metrics.json: the candidate, Production and the baselines on the
    holdout (figures, bootstrap CIs, buckets, quant checks), the models and the gate verdict."""

    holdout: Holdout = Holdout()
    config: EvaluationConfig = EvaluationConfig()
    coverage: dict[str, float] = {}
    metrics: dict[str, ModelMetrics]
    ci: dict[str, dict[str, Interval]] = {}
    days: list[dict[str, float | str | None]] = []
    scopes: dict[str, dict[str, ModelMetrics]] = {}
    buckets: list[BucketRow] = []
    bucket_edges: dict[str, list[str]] = {}
    quant: dict[str, dict[str, QuantCheck]] = {}
    models: dict[str, ModelRef | None] = {}
    verdict: VerdictRecord | None = None

    @classmethod
    def of(cls, content: EvaluationSummary | Mapping[str, Any]) -> EvaluationSummary:
        """The summary itself, or one validated from its JSON content (ValueError naming the
        field that does not fit)."""
        return content if isinstance(content, cls) else cls.model_validate(content)

    def to_json(self) -> dict[str, Any]:
        """The file's content: the fields that were set, with their original keys."""
        return self.model_dump(mode="json", exclude_unset=True)

    def with_models(self, models: Mapping[str, ModelRef | None]) -> EvaluationSummary:
        return self._with(models=dict(models))

    def with_verdict(self, verdict: VerdictRecord) -> EvaluationSummary:
        return self._with(verdict=verdict)

    def _with(self, **fields: Any) -> EvaluationSummary:
        # validated again, so the new fields are typed and count as set (to_json dumps them)
        return type(self).model_validate(self.to_json() | _plain(fields))

    # -- what the gate and the report read -----------------------------------------------------
    def figures(self, model: str) -> ModelMetrics | None:
        """`model`'s headline figures (candidate, production, baseline_*), or None."""
        return self.metrics.get(model)

    def iv_rmse(self, model: str) -> Figure:
        found = self.figures(model)
        return None if found is None else found.iv_rmse

    def interval(self, model: str, metric: str) -> Interval:
        """`model`'s bootstrap CI of `metric` ((None, None) when there is none)."""
        return self.ci.get(model, {}).get(metric, (None, None))

    def version(self, alias: str) -> str | None:
        """The registry version evaluated as `alias` (candidate | production), or None."""
        ref = self.models.get(alias)
        return None if ref is None else ref.version

    def quant_checks(self, source: str) -> dict[str, QuantCheck]:
        return self.quant.get(source, {})

    def model_names(self) -> list[str]:
        """Candidate and Production first, then the others sorted (the report's order)."""
        first = [m for m in ("candidate", "production") if m in self.metrics]
        return first + sorted(m for m in self.metrics if m not in first)


def _plain(value: Any) -> Any:
    """JSON content of records (their set fields), dicts and lists of them."""
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json", exclude_unset=True)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def write_summary(summary: EvaluationSummary, target: Path) -> Path:
    """The summary's JSON at `target` (atomically; sorted keys, as every report file)."""
    return write_json(summary.to_json(), target)


def read_summary(path: Path) -> EvaluationSummary | None:
    """The summary in `path`, None when there is no such file; DataError naming the file and
    the problem when it is not a summary."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return None
    try:
        return EvaluationSummary.model_validate(json.loads(text))
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: not JSON ({exc})") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(top level)"
        raise DataError(
            f"{path}: not an evaluation summary: {where}: {first['msg']}"
            + (f" (and {exc.error_count() - 1} more problem(s))" if exc.error_count() > 1 else "")
        ) from None
