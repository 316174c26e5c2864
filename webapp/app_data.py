"""Everything the Streamlit app (webapp/app.py) reads, with no Streamlit in it: the UI only lays
out what these functions return, and has no model logic of its own.

- Prices and IVs come from the pricing service over HTTP (`PricingClient`: POST /price, GET /model;
  the contract is serving/service.py's docstring). Any failure becomes a `ServiceError` whose
  message names the URL and what to do (`make serve`), never a traceback.
- The registry panel reads MLflow (`read_registry`): versions with stage, aliases and gate verdict
  (pipeline.registry.Registry), the training run's holdout metrics, the promotion history.
  Failures become a `RegistryError`.
- The market comes from the newest feature table (data/processed/features_YYYYMMDD.<parquet|csv>):
  the market mid IV per strike for a smile, spots and the 20-day realised vol per underlying. The
  baseline is the evaluation's "Black-Scholes with the 20-day historical vol" (rv_20d, clipped like
  pipeline.evaluation.baseline_predictions): a benchmark, not the model.

Configuration (`load_config`): PRICING_URL (default http://127.0.0.1:3000), MLFLOW_TRACKING_URI
(default: the config's mlflow.tracking_uri), APP_DATA_ROOT (default: the config's paths.root; the
default tracking URI follows it), SERVING_MODEL_NAME (default: registry.model_name).
"""

from __future__ import annotations

import datetime as dt
import functools
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import requests

from pipeline.evaluation import IV_CAP, IV_FLOOR, baseline_predictions
from pipeline.public_text import without_credentials
from pipeline.quant.black_scholes import bsm_price

DEFAULT_PRICING_URL = "http://127.0.0.1:3000"
START_SERVICE = "make serve"
FEATURES_FILE = re.compile(r"features_(\d{8})\.(parquet|csv)")
# what the app reads from a feature table: the contract, its market and the baseline's inputs
MARKET_COLUMNS = ["quote_date", "underlying", "spot", "option", "expiry", "option_type", "strike",
                  "rate", "dividend_yield", "t_years", "forward", "discount", "is_call", "mid",
                  "bid", "ask", "iv", "iv_reliable", "rv_20d", "prev_iv", "prev_surface_iv"]  # fmt: skip
# the training run's metrics shown per version: MLflow key → column title
KEY_METRICS = {
    "holdout.iv_rmse": "IV RMSE (vol pts)",
    "holdout.iv_rmse_vs_best_baseline": "vs best baseline",
    "holdout.price_r2": "price R²",
    "holdout.inside_spread_share": "in [bid, ask]",
}
VOL_POINT_METRICS = ("holdout.iv_rmse",)  # decimals in MLflow, vol points (×100) on screen
TARGET_DAYS = 30  # the pricer's default contract: the listed expiry nearest a month out


class AppError(Exception):
    """A failure the app shows as its message (one or two sentences, no traceback)."""


class ServiceError(AppError):
    """The pricing service did not price: unreachable, no model loaded, or it refused the input."""


class RegistryError(AppError):
    """The MLflow registry could not be read."""


def display_uri(uri: str) -> str:
    """`uri` as the sidebar shows it: the project folder written as `.` (sqlite:///./mlflow.db),
    so the page (and its screenshot) does not spell out where the project sits on disk."""
    from pipeline.config import REPO_ROOT

    return uri.replace(f"{REPO_ROOT}/", "./")


# -- configuration ----------------------------------------------------------------------------
@dataclass(frozen=True)
class AppConfig:
    """Where the app reads from, and the market conventions the baseline prices with."""

    pricing_url: str
    tracking_uri: str
    model_name: str
    processed_dir: Path
    rate: float
    dividend_yields: dict[str, float] = field(default_factory=dict)
    default_dividend_yield: float = 0.0

    def dividend_yield(self, underlying: str) -> float:
        return float(self.dividend_yields.get(underlying, self.default_dividend_yield))


def load_config(environ: dict[str, str] | None = None) -> AppConfig:
    """The project's Hydra config (configs/) with the environment's overrides (module docstring)."""
    env = os.environ if environ is None else environ
    return _config(
        (env.get("PRICING_URL") or DEFAULT_PRICING_URL).rstrip("/"),
        env.get("MLFLOW_TRACKING_URI") or None,
        env.get("APP_DATA_ROOT") or None,
        env.get("SERVING_MODEL_NAME") or None,
    )


@functools.lru_cache(maxsize=16)
def _config(
    pricing_url: str, tracking_uri: str | None, data_root: str | None, model_name: str | None
) -> AppConfig:
    """Composed once per set of settings (Streamlit re-runs the script on every interaction)."""
    from hydra import compose, initialize_config_dir

    from pipeline.config import CONFIG_DIR, register_configs

    register_configs()
    overrides = [f"paths.root={Path(data_root).resolve()}"] if data_root else []
    with initialize_config_dir(str(CONFIG_DIR), version_base="1.3", job_name="app"):
        cfg = compose("config", overrides=overrides)
    return AppConfig(
        pricing_url=pricing_url,
        tracking_uri=tracking_uri or cfg.mlflow.tracking_uri,
        model_name=model_name or cfg.registry.model_name,
        processed_dir=Path(cfg.paths.processed),
        rate=float(cfg.market.rate),
        dividend_yields={k: float(v) for k, v in cfg.market.dividend_yields.items()},
        default_dividend_yield=float(cfg.market.default_dividend_yield),
    )


# -- the pricing service ----------------------------------------------------------------------
@dataclass(frozen=True)
class Priced:
    """The service's answer for a batch: IVs and prices in request order, and who priced them."""

    iv: np.ndarray
    price: np.ndarray
    version: str


class PricingClient:
    """A small client of the pricing service; every failure is a ServiceError naming the URL."""

    def __init__(self, url: str, timeout_s: float = 30.0, session: requests.Session | None = None):
        self.url = url.rstrip("/")
        self.timeout = (min(3.0, timeout_s), timeout_s)  # (connect, read)
        self.session = session or requests.Session()

    def model_info(self) -> dict:
        """GET /model: {model_name, alias, version, run_id, loaded_at} of the version served."""
        return self._call("GET", "/model")

    def price(self, contracts: list[dict]) -> Priced:
        """POST /price: one batch, priced by one model version."""
        body = self._call("POST", "/price", json={"contracts": contracts})
        try:
            results = body["results"]
            iv = np.array([r["iv"] for r in results], float)
            price = np.array([r["price"] for r in results], float)
            version = str(body["model_version"])
        except (KeyError, TypeError) as exc:
            raise ServiceError(
                f"the pricing service at {self.url} answered /price without the expected "
                f"fields ({exc}): is PRICING_URL the pricing service?"
            ) from None
        if len(results) != len(contracts):
            raise ServiceError(f"the pricing service at {self.url} priced {len(results)} of "
                               f"{len(contracts)} contracts")  # fmt: skip
        return Priced(iv, price, version)

    def _call(self, method: str, path: str, **kwargs) -> dict:
        try:
            response = self.session.request(method, self.url + path, timeout=self.timeout, **kwargs)
        except requests.Timeout:
            raise ServiceError(f"the pricing service at {self.url} did not answer {path} within "
                               f"{self.timeout[1]:g} s; try again, or restart it "
                               f"({START_SERVICE})") from None  # fmt: skip
        except requests.RequestException as exc:
            raise ServiceError(f"the pricing service at {self.url} is not reachable "
                               f"({_short(exc)}). Start it with `{START_SERVICE}`, or point "
                               "PRICING_URL at it.") from None  # fmt: skip
        if response.status_code == 200:
            try:
                return response.json()
            except ValueError:
                raise ServiceError(f"the pricing service at {self.url} answered {path} with "
                                   "something that is not JSON: is PRICING_URL the pricing "
                                   "service?") from None  # fmt: skip
        raise ServiceError(self._refusal(path, response))

    def _refusal(self, path: str, response: requests.Response) -> str:
        """The message for a non-200 answer: the service's own error sentence where it has one."""
        try:
            said = response.json().get("error") or ""
        except (ValueError, AttributeError):
            said = ""
        said = said or " ".join(response.text.split())[:200] or response.reason
        status = response.status_code
        if status == 503:
            return (f"the pricing service at {self.url} has no model loaded yet ({said}). "
                    "It loads the registry's Production version: is one promoted "
                    "(`make promote`)?")  # fmt: skip
        if status == 404:
            return (f"{self.url}{path} does not exist (404): is PRICING_URL the pricing "
                    f"service? Start it with `{START_SERVICE}`.")  # fmt: skip
        if 400 <= status < 500:
            return f"the pricing service refused the contract ({status}): {said}"
        return f"the pricing service at {self.url} failed ({status}): {said}"


def _short(exc: BaseException) -> str:
    """A connection error in a few words (requests nests the cause several levels deep)."""
    text = str(exc)
    for pattern in (r"\[Errno -?\d+\] [^')\]]+", r"Connection refused", r"Max retries exceeded"):
        if found := re.search(pattern, text):
            return found.group(0)
    return type(exc).__name__


# -- the market -------------------------------------------------------------------------------
def latest_features(processed_dir: Path) -> Path | None:
    """The newest features_YYYYMMDD.<parquet|csv> in `processed_dir` (parquet wins a tie)."""
    if not Path(processed_dir).is_dir():
        return None
    found = [(m.group(1), m.group(2) == "parquet", p) for p in Path(processed_dir).iterdir()
             if (m := FEATURES_FILE.fullmatch(p.name))]  # fmt: skip
    return max(found)[2] if found else None


def read_market(path: Path) -> pd.DataFrame:
    """The columns of a feature table the app uses, dates parsed (csv keeps them as text)."""
    from pipeline.artifacts import read_frame

    frame = read_frame(Path(path), MARKET_COLUMNS)
    for col in ("quote_date", "expiry"):
        frame[col] = pd.to_datetime(frame[col])
    frame["iv_reliable"] = frame["iv_reliable"].astype(bool)
    return frame


def market_date(market: pd.DataFrame) -> dt.date:
    return market["quote_date"].max().date()


def underlyings(market: pd.DataFrame) -> list[str]:
    """Underlyings with at least one reliable market IV (the ones a smile can be drawn for)."""
    return sorted(market.loc[market["iv_reliable"], "underlying"].unique())


def expiries(market: pd.DataFrame, underlying: str) -> list[dt.date]:
    """Listed expiries of `underlying` that have at least one reliable market IV."""
    rows = market[(market["underlying"] == underlying) & market["iv_reliable"]]
    return sorted(d.date() for d in rows["expiry"].unique())


def spot(market: pd.DataFrame, underlying: str) -> float:
    return float(market.loc[market["underlying"] == underlying, "spot"].iloc[0])


def hist_vol(market: pd.DataFrame, underlying: str) -> float | None:
    """The underlying's 20-day realised vol (the baseline's vol), or None where unknown."""
    vols = market.loc[market["underlying"] == underlying, "rv_20d"].dropna()
    return float(vols.iloc[0]) if len(vols) else None


# -- the pricer -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Contract:
    """One contract as the pricer form holds it; rate/dividend_yield None = the model's own."""

    underlying: str
    option_type: str  # "C" | "P"
    strike: float
    expiry: dt.date
    quote_date: dt.date
    spot: float
    rate: float | None = None
    dividend_yield: float | None = None

    def as_json(self) -> dict:
        """The contract in POST /price's spelling."""
        body = {"underlying": self.underlying, "option_type": self.option_type,
                "strike": float(self.strike), "expiry": self.expiry.isoformat(),
                "quote_date": self.quote_date.isoformat(), "spot": float(self.spot)}  # fmt: skip
        for key in ("rate", "dividend_yield"):
            if getattr(self, key) is not None:
                body[key] = float(getattr(self, key))
        return body

    @property
    def t_years(self) -> float:
        return (self.expiry - self.quote_date).days / 365.0  # as feature_engineer counts time


def default_contract(market: pd.DataFrame, underlying: str) -> Contract:
    """The form's starting contract: a call at the listed strike nearest spot, on the listed
    expiry nearest a month out, on the market's date."""
    rows = market[(market["underlying"] == underlying) & market["iv_reliable"]]
    today = market_date(market)
    target = pd.Timestamp(today + dt.timedelta(days=TARGET_DAYS))
    expiry = min(rows["expiry"].unique(), key=lambda e: abs(pd.Timestamp(e) - target))
    s = spot(market, underlying)
    strikes = rows.loc[rows["expiry"] == expiry, "strike"]
    strike = float(strikes.iloc[(strikes - s).abs().argmin()])
    return Contract(underlying, "C", strike, pd.Timestamp(expiry).date(), today, s)


def blank_contract(underlying: str, today: dt.date) -> Contract:
    """The form's starting contract when there is no market data: an at-the-money call at 100."""
    return Contract(underlying, "C", 100.0, today + dt.timedelta(days=TARGET_DAYS), today, 100.0)


def market_quote(market: pd.DataFrame, contract: Contract) -> dict | None:
    """The market's bid, ask, mid and mid IV of exactly this contract on its quote date, if listed."""
    rows = market[(market["underlying"] == contract.underlying)
                  & (market["option_type"] == contract.option_type)
                  & np.isclose(market["strike"], contract.strike)
                  & (market["expiry"] == pd.Timestamp(contract.expiry))
                  & (market["quote_date"].dt.normalize() == pd.Timestamp(contract.quote_date))]  # fmt: skip
    if rows.empty:
        return None
    row = rows.iloc[0]
    iv = float(row["iv"]) if row["iv_reliable"] else math.nan
    return {"bid": float(row["bid"]), "ask": float(row["ask"]), "mid": float(row["mid"]), "iv": iv}


def baseline_quote(contract: Contract, vol: float, cfg: AppConfig) -> tuple[float, float]:
    """(iv, price) of Black-Scholes at `vol` (clipped to the evaluation's [1%, 500%]) with the
    contract's rate and dividend yield, else the market config's."""
    iv = min(max(float(vol), IV_FLOOR), IV_CAP)
    rate = cfg.rate if contract.rate is None else contract.rate
    q = (cfg.dividend_yield(contract.underlying) if contract.dividend_yield is None
         else contract.dividend_yield)  # fmt: skip
    price = bsm_price(contract.spot, contract.strike, contract.t_years, rate, q, iv,
                      contract.option_type == "C")  # fmt: skip
    return iv, float(price)


# -- the smile --------------------------------------------------------------------------------
def smile(market: pd.DataFrame, underlying: str, expiry: dt.date) -> pd.DataFrame:
    """One row per strike of `underlying`/`expiry` with a reliable market IV, the out-of-the-money
    side where both are (puts below the forward, calls above: the liquid quotes), sorted by
    strike; with the baseline's `baseline_iv`, `baseline_price`."""
    rows = market[(market["underlying"] == underlying)
                  & (market["expiry"] == pd.Timestamp(expiry)) & market["iv_reliable"]]  # fmt: skip
    rows = rows[np.isfinite(rows["iv"].to_numpy(float))]
    otm = (rows["strike"] >= rows["forward"]) == rows["is_call"].astype(bool)
    rows = (rows.assign(otm=otm).sort_values(["strike", "otm"], ascending=[True, False])
            .drop_duplicates("strike").drop(columns="otm").reset_index(drop=True))  # fmt: skip
    base = baseline_predictions(rows)["baseline_hist_vol"]
    return rows.assign(baseline_iv=base["iv"].to_numpy(), baseline_price=base["price"].to_numpy())


def smile_contracts(rows: pd.DataFrame) -> list[dict]:
    """The smile's contracts in POST /price's spelling (with their OCC symbol, rate and yield)."""
    out = []
    for r in rows.itertuples(index=False):
        body = {"underlying": r.underlying, "option_type": r.option_type,
                "strike": float(r.strike), "expiry": r.expiry.date().isoformat(),
                "quote_date": r.quote_date.date().isoformat(), "spot": float(r.spot)}  # fmt: skip
        for key in ("rate", "dividend_yield"):
            if math.isfinite(value := float(getattr(r, key))):
                body[key] = value
        if isinstance(r.option, str) and r.option:
            body["option"] = r.option
        out.append(body)
    return out


def with_model(rows: pd.DataFrame, client: PricingClient) -> tuple[pd.DataFrame, str]:
    """The smile with the service's `model_iv`, `model_price` (one POST /price), and the version."""
    priced = client.price(smile_contracts(rows))
    return rows.assign(model_iv=priced.iv, model_price=priced.price), priced.version


def smile_lines(rows: pd.DataFrame) -> pd.DataFrame:
    """The smile in long form for a chart: strike, series, iv (vol points)."""
    series = {"iv": "market mid", "model_iv": "model", "baseline_iv": "BS, 20-day hist vol"}
    present = {col: name for col, name in series.items() if col in rows}
    wide = rows[["strike", *present]].rename(columns=present)
    long = wide.melt(id_vars="strike", var_name="series", value_name="vol")
    return pd.DataFrame({"strike": long["strike"], "series": long["series"],
                         "iv": long["vol"] * 100})  # fmt: skip


# -- the registry -----------------------------------------------------------------------------
@dataclass(frozen=True)
class RegistryView:
    """What the registry panel shows; `versions` is empty when nothing is registered."""

    uri: str
    model_name: str
    versions: pd.DataFrame
    verdicts: dict[str, dict]
    history: pd.DataFrame
    problems: list[str]

    @property
    def empty(self) -> bool:
        return self.versions.empty


def read_registry(tracking_uri: str, model_name: str, client=None) -> RegistryView:
    """The registered model's versions, verdicts, history and stage/alias disagreements, through
    `client` (default: an MlflowClient on `tracking_uri`)."""
    import mlflow

    from pipeline.registry import Registry

    _check_store(tracking_uri)
    try:
        registry = Registry(model_name, client or mlflow.MlflowClient(tracking_uri))
        state = registry.state()
        verdicts = {row["version"]: registry.verdict(row["version"]) for row in state}
        history = registry.history()
        problems = registry.check_consistency()
        metrics = {row["version"]: _run_metrics(registry.client, row["run_id"]) for row in state}
    except Exception as exc:  # RegistryUnavailable, or the store itself failing
        raise RegistryError(unreadable(tracking_uri, exc)) from None
    return RegistryView(
        uri=registry.uri,
        model_name=model_name,
        versions=versions_table(state, metrics),
        verdicts={v: d for v, d in verdicts.items() if d},
        history=history_table(history),
        problems=problems,
    )


def unreadable(tracking_uri: str, exc: BaseException) -> str:
    """One sentence for a failed read (RegistryUnavailable already names the registry)."""
    detail = " ".join(str(exc).split())[:300] or type(exc).__name__
    uri = _no_credentials(tracking_uri)
    if uri not in detail:
        detail = f"model registry at {uri}: {detail}"
    return f"cannot read the {detail}. Check MLFLOW_TRACKING_URI; the rest of the app still works."


def _check_store(tracking_uri: str) -> None:
    """A sqlite store must exist: MLflow would create an empty one, and the app only reads."""
    if tracking_uri.startswith("sqlite:///"):
        path = Path(tracking_uri.removeprefix("sqlite:///").split("?")[0])
        if not path.is_file():
            raise RegistryError(f"no MLflow store at {path}: `make run` trains and registers a "
                                "model there, or set MLFLOW_TRACKING_URI")  # fmt: skip


def _no_credentials(uri: str) -> str:
    return without_credentials(uri)


def _run_metrics(client, run_id: str | None) -> dict[str, float]:
    """KEY_METRICS of the version's training run ({} when the run is gone)."""
    if not run_id:
        return {}
    try:
        logged = client.get_run(run_id).data.metrics
    except Exception:  # a deleted run: the version is still shown, without figures
        return {}
    return {k: logged[k] for k in KEY_METRICS if k in logged}


def versions_table(state: list[dict], metrics: dict[str, dict]) -> pd.DataFrame:
    """One row per version, newest first: stage, aliases, gate verdict, created, key metrics."""
    rows = []
    for row in sorted(state, key=lambda r: int(r["version"]), reverse=True):
        figures = metrics.get(row["version"], {})
        rows.append({
            "version": row["version"], "stage": row["stage"],
            "aliases": ", ".join(row["aliases"]), "gate verdict": row["verdict"] or "none",
            "created": when(row["created"]),
            **{title: figures.get(key, np.nan) * (100 if key in VOL_POINT_METRICS else 1)
               for key, title in KEY_METRICS.items()},
        })  # fmt: skip
    columns = ["version", "stage", "aliases", "gate verdict", "created", *KEY_METRICS.values()]
    return pd.DataFrame(rows, columns=columns)


def when(iso: str | None) -> str:
    """A UTC ISO timestamp as 'YYYY-MM-DD HH:MM UTC' (the seconds and offset are noise here)."""
    if not iso:
        return ""
    try:
        stamp = pd.Timestamp(iso)
    except ValueError:
        return iso
    stamp = stamp.tz_convert("UTC") if stamp.tzinfo else stamp
    return stamp.strftime("%Y-%m-%d %H:%M UTC")


def history_table(entries: list[dict]) -> pd.DataFrame:
    """Promotion history, newest first: when, action, from → to, who, why, forced past the gate."""
    columns = ["at", "action", "from", "to", "user", "reason", "forced"]
    rows = [{"at": when(e.get("at")), "action": e.get("action"),
             "from": e.get("from_version") or "", "to": e.get("to_version") or "",
             "user": e.get("user"), "reason": e.get("reason") or "",
             "forced": bool(e.get("forced"))} for e in reversed(entries)]  # fmt: skip
    return pd.DataFrame(rows, columns=columns)
