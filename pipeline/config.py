"""Typed schemas for the Hydra configuration in `configs/`.

The YAML files in `configs/` hold every default; these dataclasses only say which keys exist and
their types (every field MISSING: a value here would be a second, silently disagreeing default;
the one exception is data_fetch's per-source blocks, see DataFetchConfig), so a misspelled key or
a wrong type fails at start-up with a message naming it. tests/unit/test_config_defaults.py keeps
it so.
`register_configs()` puts them in Hydra's ConfigStore; entry points call it (nothing happens at
import time).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, OmegaConf

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = REPO_ROOT / "configs"
TASKS = (
    "data_fetch",
    "data_validate",
    "feature_engineer",
    "model_train",
    "model_evaluate",
    "model_deploy",
    "generate_report",
)


@dataclass
class PathsConfig:
    root: str = MISSING
    data: str = MISSING
    raw: str = MISSING
    processed: str = MISSING
    quarantine: str = MISSING
    logs: str = MISSING
    reports: str = MISSING
    checkpoints: str = MISSING
    state: str = MISSING  # daily market states (feature_engineer → service, pyfunc, monitor)


@dataclass
class MlflowConfig:
    tracking_uri: str = MISSING
    experiment: str = MISSING
    artifact_location: str = MISSING


@dataclass
class RetryPolicy:
    max_retries: int = MISSING
    backoff: str = MISSING  # exponential | linear | none
    max_delay: float | None = MISSING  # seconds; cap on any single wait
    base_delay: float = MISSING  # seconds; first wait (exponential) or step (linear)
    jitter: bool = MISSING


@dataclass
class RetryConfig:
    data_fetch: RetryPolicy = MISSING
    data_validate: RetryPolicy = MISSING
    feature_engineer: RetryPolicy = MISSING
    model_train: RetryPolicy = MISSING
    model_evaluate: RetryPolicy = MISSING
    model_deploy: RetryPolicy = MISSING
    generate_report: RetryPolicy = MISSING
    monitor: RetryPolicy = MISSING


@dataclass
class MarketConfig:
    """Market conventions shared by every source and by features: flat rate, dividend yields."""

    rate: float = MISSING
    default_dividend_yield: float = MISSING
    dividend_yields: dict[str, float] = MISSING


@dataclass
class UnderlyingSpec:
    symbol: str = MISSING  # Cboe spelling: indices carry a leading underscore (_SPX)
    kind: str = MISSING  # etf | index (sets tick sizes and strike grids)
    spot: float = MISSING  # spot on the path's origin date
    vol: float = MISSING  # long-run instantaneous vol level


@dataclass
class SyntheticMarketConfig:
    seed: int = MISSING
    origin: str = MISSING  # first date of every spot path (YYYY-MM-DD)
    underlyings: list[UnderlyingSpec] = MISSING
    # None: exactly `underlyings`; N: the first N of them, then generated single stocks up to N
    # (pipeline.market.synthetic_universe)
    n_underlyings: int | None = MISSING
    bad_row_rate: float = MISSING
    shock_dates: list[str] = MISSING
    shock_size: float = MISSING  # multiplier on the variance level on a shock date (< 1: crush)
    shock_skew: float = MISSING  # smile skew ×this from each shock date on (persists)
    shock_strike_width: float = MISSING  # strikes listed ×this as wide from each shock date on
    vol_of_vol: float = MISSING
    mean_reversion: float = MISSING  # per year
    leverage: float = MISSING  # correlation of spot and vol shocks
    vol_premium: float = MISSING  # implied minus realised, in vol points (0.03 = 3 points)
    max_expiry_years: float = MISSING
    strike_std_devs: float = MISSING
    family: str = MISSING  # ssvi | sabr_jumps (pipeline.market.synthetic.FAMILIES)
    jump_intensity: float = MISSING  # Merton jumps per year on the spot path (either family)
    jump_mean: float = MISSING  # mean log-jump
    jump_std: float = MISSING  # standard deviation of a log-jump
    sabr_beta: float = MISSING  # sabr_jumps: SABR backbone exponent
    sabr_rho: float = MISSING  # sabr_jumps: 3-month SABR correlation
    sabr_vol_of_vol: float = MISSING  # sabr_jumps: 3-month SABR vol-of-vol (ν ∝ 1/√T per expiry)


@dataclass
class CboeConfig:
    base_url: str = MISSING
    symbols: list[str] = MISSING
    timeout_s: float = MISSING
    user_agent: str = MISSING


@dataclass
class FileSourceConfig:
    path: str = MISSING  # may contain {date} (YYYYMMDD) and {symbol}


@dataclass
class DataFetchConfig:
    source: str = MISSING  # synthetic | cboe | file
    date: str | None = MISSING
    symbols: list[str] | None = MISSING  # None: every symbol the source knows
    force: bool = MISSING
    # The one documented exception to "no default here" (tests/unit/test_config_defaults.py): each
    # source's file (configs/data_fetch/<source>.yaml) sets its own block; None says "not this
    # source" for the others' blocks, which no file sets.
    synthetic: SyntheticMarketConfig | None = None
    cboe: CboeConfig | None = None
    file: FileSourceConfig | None = None


@dataclass
class DataValidateConfig:
    date: str | None = MISSING
    force: bool = MISSING
    max_bad_row_share: float = MISSING  # halt above this share of quarantined rows
    max_null_rate: float = MISSING  # halt when a required column is null above this rate
    arbitrage_tolerance: float = MISSING  # absolute price slack on no-arbitrage bounds
    max_quote_age_days: int = MISSING  # chain older than this versus the quote date is stale


@dataclass
class FeatureEngineerConfig:
    date: str | None = MISSING
    force: bool = MISSING
    realised_vol_windows: list[int] = MISSING
    realised_vol_min_periods: int = MISSING
    history_days: int = MISSING  # validated days read back for realised vol
    previous_day_lookback: int = MISSING  # trading days searched for the previous features file
    min_vega: float = MISSING  # below this (per unit vol) the solved IV is flagged unreliable


@dataclass
class ModelTrainConfig:
    date: str | None = MISSING  # last feature day used; None = latest trading day
    force: bool = MISSING
    days: int = MISSING  # trading days of features read, ending at `date`
    validation_days: int = MISSING  # for early stopping, just before the holdout
    holdout_days: int = MISSING  # the last N days: never seen by training or early stopping
    min_train_days: int = MISSING
    features: list[str] = MISSING
    seed: int = MISSING
    # XGBoost hyperparameters (flat, so sweeps read `-m model_train.max_depth=4,6,8`)
    n_estimators: int = MISSING
    learning_rate: float = MISSING
    max_depth: int = MISSING
    min_child_weight: float = MISSING
    subsample: float = MISSING
    colsample_bytree: float = MISSING
    reg_lambda: float = MISSING
    early_stopping_rounds: int = MISSING
    register: bool = MISSING  # register the model as a new version in Staging
    fit_rows: str = MISSING  # informative (OTM+ATM) | reliable (every reliable quote)
    spread_weighting: bool = MISSING  # weight rows by 1 / their quoted spread in vol terms
    # weight each day by 1 / its previous-day-IV baseline MSE (training.day_weights)
    day_weighting: bool = MISSING
    # learn the base's sticky-strike / own-IV blend (pricer.fit_blend)
    learn_base_blend: bool = MISSING
    # log: the trees correct the smile base by a factor, vol features relative to it; level:
    # they add vol points to it (pricer.model_inputs)
    target_scale: str = MISSING
    # on the log scale, read the day's move and the moneyness in standard deviations of
    # yesterday's vol (pricer.input_arrays, moves "standardised")
    standardise_moves: bool = MISSING
    # days the market moved overnight more than this × the window's median (training.jump_days)
    # are left out of the monitor's reference; None: none
    jump_day_factor: float | None = MISSING
    # first holdout day (YYYY-MM-DD; the monitor's change point on a retrain); None = the last
    # holdout_days. Holdout = the days from it on (the last holdout_days of them at most)
    holdout_start: str | None = MISSING


@dataclass
class ModelEvaluateConfig:
    date: str | None = MISSING
    force: bool = MISSING
    min_mid_for_mape: float = MISSING
    bootstrap_samples: int = MISSING
    confidence: float = MISSING
    production_margin: float = MISSING  # fail if IV RMSE > production's × (1 + margin)
    parity_tolerance: float = MISSING  # max share of put-call parity breaches (beyond a tick)
    monotonic_tolerance: float = MISSING  # max share of strike-monotonicity/convexity breaches
    bounds_tolerance: float = MISSING  # max share of prices outside no-arbitrage bounds
    # the skill CI's lower bound vs the best baseline must exceed it
    min_skill_lower_bound: float = MISSING
    min_bootstrap_days: int = MISSING  # fewer holdout days: resample (date, underlying) groups


@dataclass
class RegistryConfig:
    model_name: str = MISSING
    force: bool = MISSING  # promote despite a failed/missing gate verdict (needs a reason)
    reason: str | None = MISSING
    version: str | None = MISSING  # promote this Staging version instead of the latest


@dataclass
class ModelDeployConfig:
    date: str | None = MISSING
    force: bool = MISSING
    auto_promote: bool = MISSING  # the original plan keeps deployment manual
    health_check: bool = MISSING  # roll Production out to the service and check it
    service_url: str = MISSING
    service_timeout_s: float = MISSING
    golden_contracts: int = MISSING  # sampled from the newest feature file, plus the input example
    golden_tolerance: float = MISSING  # max |IV service - IV offline|


@dataclass
class ServingConfig:
    host: str = MISSING
    port: int = MISSING
    model_name: str = MISSING
    alias: str = MISSING
    poll_s: float = MISSING  # registry poll interval; 0 = off
    batch_max_contracts: int = MISSING  # adaptive batching limit; 1 = off
    timeout_s: float = MISSING
    state_dir: str = MISSING  # the daily market states the service prices with
    max_state_age_days: int = MISSING  # trading days: older (or missing) state → 422
    alert_sink: str | None = MISSING  # "module:function" for the service's alerts; null = log only


@dataclass
class MonitorConfig:
    """monitor: the Production model on the newest validated day vs its holdout (drift + errors),
    and the retrain trigger (monitoring.trigger)."""

    date: str | None = MISSING  # the day to monitor; None = the newest feature file
    force: bool = MISSING
    rmse_degradation: float = MISSING  # retrain when IV RMSE > reference × (1 + this)
    drift_share: float = MISSING  # retrain when the share of drifted features exceeds this
    breach_days: int = MISSING  # ... on this many of the last window_days monitored days (today in)
    window_days: int = MISSING
    sample_size: int = MISSING  # rows of current and reference that Evidently sees (seeded)
    seed: int = MISSING
    workspace: str = MISSING  # local Evidently workspace (make dashboard)
    project: str = MISSING  # its project name
    retrain: bool = MISSING  # on a trigger, run model_train → model_evaluate
    auto_promote: bool = MISSING  # promote a retrained candidate that passed the gate
    failed_gate_backoff_days: int = MISSING  # a due retrain waits this long after a failed gate
    # one day's IV RMSE > reference × (1 + this): a change (no 2nd day)
    change_rmse_jump: float = MISSING


@dataclass
class ScheduleConfig:
    """The scheduler (monitoring.scheduler): when the daily flow runs, its lock, its records."""

    hour: int = MISSING
    minute: int = MISSING
    timezone: str = MISSING
    day_of_week: str = MISSING  # cron day-of-week field, e.g. mon-fri
    misfire_grace_time_s: int = MISSING
    coalesce: bool = MISSING
    catch_up: bool = MISSING  # at start-up, run the trading days missed since the last success
    max_catch_up_days: int = MISSING
    lock_wait_s: float = MISSING  # 0: a second run refuses at once (exit 3)
    lock_file: str = MISSING
    state_file: str = MISSING
    runs_file: str = MISSING
    log_file: str = MISSING


@dataclass
class AlertsConfig:
    """The alert sink (monitoring.alerts) and the Prometheus textfile (monitoring.prom_textfile)."""

    webhook_url: str | None = MISSING  # Slack-compatible JSON POST; env ALERT_WEBHOOK_URL overrides
    timeout_s: float = MISSING  # per HTTP attempt
    retries: int = MISSING  # retries after the first attempt
    base_delay_s: float = MISSING  # exponential backoff with jitter
    max_delay_s: float = MISSING
    exit_wait_s: float = MISSING  # at process exit, wait at most this long for pending deliveries
    log_path: str = MISSING  # every alert as a JSON line
    prom_textfile: str = MISSING  # task metrics in Prometheus text format


@dataclass
class GenerateReportConfig:
    """generate_report: the stakeholder report from the cached artifacts (md + html + PNGs)."""

    date: str | None = MISSING  # business date; artifacts dated after it are left out
    force: bool = MISSING
    title: str = MISSING
    dpi: int = MISSING  # resolution of the PNG plots


@dataclass
class MainConfig:
    start_date: str | None = MISSING
    end_date: str | None = MISSING
    days: int = MISSING  # trading days ending at end_date when start_date is not given
    tasks: list[str] = MISSING
    workers: int = MISSING  # executor=dask: a LocalCluster's worker processes (local: unused)
    executor: str = MISSING  # local (all in this process, in date order) | dask (dask_executor)
    dask_scheduler: str | None = MISSING  # executor=dask: a scheduler address; None = LocalCluster
    shards: int | None = MISSING  # executor=dask: feature_engineer's shards; None = workers


@dataclass
class ReplayConfig:
    """The market replay (monitoring.replay)."""

    root: str = MISSING
    end_date: str = MISSING
    days: int = MISSING
    warmup_days: int = MISSING
    shock_day: int | None = MISSING  # None: no shock
    shock_size: float = MISSING  # variance ×this on the shock day (< 1: a vol crush)
    shock_skew: float = MISSING  # skew ×this from the shock day on (1.6 = 60% steeper)
    shock_strike_width: float = MISSING  # strikes listed this many times as wide from the shock day
    fault_rate: float = MISSING
    retry_base_delay: float = MISSING
    approve: bool = MISSING
    name: str = MISSING  # the scenario (configs/replay/<name>.yaml), named in the summary


@dataclass
class Config:
    paths: PathsConfig = MISSING
    mlflow: MlflowConfig = MISSING
    retry: RetryConfig = MISSING
    market: MarketConfig = MISSING
    data_fetch: DataFetchConfig = MISSING
    data_validate: DataValidateConfig = MISSING
    feature_engineer: FeatureEngineerConfig = MISSING
    model_train: ModelTrainConfig = MISSING
    model_evaluate: ModelEvaluateConfig = MISSING
    model_deploy: ModelDeployConfig = MISSING
    monitor: MonitorConfig = MISSING
    generate_report: GenerateReportConfig = MISSING
    registry: RegistryConfig = MISSING
    serving: ServingConfig = MISSING
    main: MainConfig = MISSING
    alerts: AlertsConfig = MISSING
    schedule: ScheduleConfig = MISSING
    replay: ReplayConfig = MISSING
    date: str | None = MISSING  # business date (YYYY-MM-DD); None = latest trading day
    data_format: str = MISSING  # parquet | csv
    seed: int = MISSING


def _repo_root() -> str:
    return str(REPO_ROOT)


def register_configs() -> None:
    """Register the schema and the `repo_root` resolver; safe to call more than once."""
    if not OmegaConf.has_resolver("repo_root"):
        OmegaConf.register_new_resolver("repo_root", _repo_root)
    cs = ConfigStore.instance()
    cs.store(name="config_schema", node=Config)


def check_schema(cfg: Any) -> None:
    """Re-check a composed config against the schema: `+key=value` overrides may add keys that the
    schema does not know; those raise an OmegaConf error naming the key."""
    cfg = OmegaConf.to_container(cfg, resolve=False)
    cfg.pop("hydra", None)
    OmegaConf.merge(OmegaConf.structured(Config), cfg)


def to_container(cfg: Any) -> dict:
    """Resolved plain-dict copy of a config node (for logging as params and hashing)."""
    return OmegaConf.to_container(cfg, resolve=True, throw_on_missing=True)
