"""The market state of one trading day, published daily, and the features it gives a contract.

A contract's own fields (strike, expiry, spot, ...) do not say what the market looked like; the
model also reads the state of the **last trading day before the contract's quote date**:

- `realised`: per underlying, its realised vols (`rv_*`, through the state's close);
- `spots`: per underlying, the close (today's spot against it is the day's move: `spot_return`);
- `smiles`: per (underlying, expiry), an arbitrage-free SSVI slice fitted on the day's
  informative quotes (pipeline.quant.smile): the smile base the model corrects;
- `surfaces`: per underlying, a 6-term quadratic in k/√T and √T (Dumas-Fleming-Whaley), the
  fallback base and the source of the ATM level and skew features;
- `contract_ivs`: option (OCC symbol) → reliable mid IV of that day (the random-walk baseline).

feature_engineer builds day D's features with the state of the trading day before D and then
publishes D's own state (`data/state/market_state_YYYYMMDD.json`, one strict-JSON file written
atomically, logged with the task's run): the pricing service, the pyfunc model and the monitor
look states up the same way (`StateStore`), so the model that is served is the model that is
monitored, and its surface is as fresh as the last daily run, without a retrain.

**Informative quotes** (the convention of every accuracy figure and of the smile fits): a quote
is at the money when |ln(K/F)|/√T ≤ ATM_BAND, out of the money when it is a call above or a put
below that band, in the money otherwise. ITM mids are mostly intrinsic value: their IVs are noisy
and biased (mids below intrinsic drop out, the rest skew high), so smiles are fitted on OTM+ATM
quotes weighted by 1 / (their spread in vol terms), as surface providers do.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import threading
import weakref
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pandas as pd

from pipeline.market.calendar import previous_trading_day, shift_trading_days, trading_days
from pipeline.quant import smile

FORMAT_VERSION = 2
STATE_PREFIX = "market_state_"
ATM_BAND = 0.1  # |ln(K/F)|/√T at most this: at the money (±0.5 sd at 20% vol)
SPREAD_IV_FLOOR = 0.002  # spread in vol below 0.2 points weighs as 0.2 points
SURFACE_COEFS = ("c0", "c_x", "c_xx", "c_s", "c_sx", "c_ss")
SLICE_COLUMNS = ("underlying", "expiry", "t", "theta", "rho", "psi", "k_min", "k_max",
                 "n_quotes", "fit_rmse", "source")  # fmt: skip
MIN_SURFACE_QUOTES = 12
RV_COLUMNS = ("rv_5d", "rv_10d", "rv_20d")  # realised vols every feature table carries
MONEYNESS_CLASSES = ("OTM", "ATM", "ITM")
# the state features of a contract (besides the realised vols, whose windows are configured)
STATE_FEATURES = ("vol_time", "prev_iv", "prev_surface_iv", "prev_atm_iv", "prev_skew",
                  "prev_smile_iv", "prev_smile_iv_strike", "spot_return")  # fmt: skip


class StateUnavailable(LookupError):
    """No market state recent enough to price contracts of a quote date (names what there is)."""


# -- informative quotes --------------------------------------------------------------------------
def moneyness_class(std_moneyness, is_call) -> np.ndarray:
    """'OTM', 'ATM' or 'ITM' per contract (see the module docstring)."""
    x = np.asarray(std_moneyness, float)
    call = np.asarray(is_call).astype(bool)
    otm = np.where(call, x > ATM_BAND, x < -ATM_BAND)
    return np.where(np.abs(x) <= ATM_BAND, "ATM", np.where(otm, "OTM", "ITM")).astype(object)


def informative(frame: pd.DataFrame) -> np.ndarray:
    """Reliable OTM or ATM quotes: what smiles are fitted on and accuracy is headlined on."""
    cls = (
        frame["moneyness_class"]
        if "moneyness_class" in frame
        else moneyness_class(frame["std_moneyness"], frame["is_call"])
    )
    return np.asarray(frame["iv_reliable"], bool) & (np.asarray(cls) != "ITM")


def spread_weight(spread_iv) -> np.ndarray:
    """1 / the quoted spread in vol terms (floored at SPREAD_IV_FLOOR; unknown → the floor's)."""
    s = np.asarray(spread_iv, float)
    s = np.where(np.isfinite(s), np.maximum(s, SPREAD_IV_FLOOR), np.inf)
    return np.where(np.isfinite(s), SPREAD_IV_FLOOR / s, 0.0)


# -- fitting a day's state -----------------------------------------------------------------------
def _surface_design(x: np.ndarray, s: np.ndarray) -> np.ndarray:
    x = np.clip(x, -3.0, 3.0)
    return np.column_stack([np.ones_like(x), x, x * x, s, s * x, s * s])


def fit_surfaces(features: pd.DataFrame | None) -> pd.DataFrame:
    """Per underlying, least squares of its informative IVs on (1, x, x², s, s·x, s²), x = k/√T
    (clipped to ±3), s = √T, with at least MIN_SURFACE_QUOTES quotes (all reliable quotes when
    there are too few informative ones). One row per underlying fitted."""
    rows = []
    if features is not None and not features.empty:
        reliable = features[features["iv_reliable"].astype(bool)].reset_index(drop=True)
        useful = pd.Series(informative(reliable), index=reliable.index)
        for underlying, grp in reliable.groupby("underlying"):
            use = grp[useful[grp.index]]
            if len(use) < MIN_SURFACE_QUOTES:
                use = grp
            if len(use) < MIN_SURFACE_QUOTES:
                continue
            x, s = use["std_moneyness"].to_numpy(float), use["sqrt_t"].to_numpy(float)
            coef, *_ = np.linalg.lstsq(_surface_design(x, s), use["iv"].to_numpy(float), rcond=None)
            rows.append({"underlying": underlying, **dict(zip(SURFACE_COEFS, coef, strict=True))})
    return pd.DataFrame(rows, columns=["underlying", *SURFACE_COEFS])


def fit_day_smiles(features: pd.DataFrame | None) -> tuple[pd.DataFrame, list[dict]]:
    """SSVI slices of a day's reliable quotes (informative ones, spread-weighted) and the
    fallbacks the fit took (pipeline.quant.smile.fit_smiles)."""
    if features is None or features.empty:
        return pd.DataFrame(columns=list(SLICE_COLUMNS)), []
    reliable = features[features["iv_reliable"].astype(bool)]
    frame = pd.DataFrame({
        "underlying": reliable["underlying"].to_numpy(),
        "expiry": pd.to_datetime(reliable["expiry"]).to_numpy(),
        "t_years": reliable["t_years"].to_numpy(float),
        "log_moneyness": reliable["log_moneyness"].to_numpy(float),
        "iv": reliable["iv"].to_numpy(float),
        "weight": spread_weight(reliable["spread_iv"]) if "spread_iv" in reliable else 1.0,
        "informative": informative(reliable),
    })  # fmt: skip
    slices, fallbacks = smile.fit_smiles(frame)
    return slices, fallbacks


def contract_ivs(features: pd.DataFrame | None) -> pd.Series:
    """option → reliable IV of a day's features."""
    if features is None or features.empty:
        return pd.Series(dtype=float)
    usable = features[features["iv_reliable"].astype(bool)].drop_duplicates("option")
    return usable.set_index("option")["iv"].astype(float)


@dataclass(frozen=True)
class MarketState:
    """One trading day's state (see the module docstring)."""

    as_of: dt.date
    rate: float
    default_dividend_yield: float
    dividend_yields: dict[str, float] = field(default_factory=dict)
    realised: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame({"underlying": pd.Series(dtype=object)})
    )
    spots: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    surfaces: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["underlying", *SURFACE_COEFS]).astype(
            {"underlying": object, **dict.fromkeys(SURFACE_COEFS, float)}
        )
    )
    smiles: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=list(SLICE_COLUMNS)))
    contract_ivs: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    fallbacks: tuple[dict, ...] = ()  # smile fits that fell back, with the reason

    @classmethod
    def from_day(
        cls, features: pd.DataFrame, realised: pd.DataFrame, market, as_of: dt.date
    ) -> MarketState:
        """Day `as_of`'s state from its feature table (quotes, IVs, spots), its realised vols
        (one row per underlying) and the `market` conventions."""
        smiles, fallbacks = fit_day_smiles(features)
        return cls(
            as_of=as_of,
            rate=float(market.rate),
            default_dividend_yield=float(market.default_dividend_yield),
            dividend_yields={str(k): float(v) for k, v in dict(market.dividend_yields).items()},
            realised=realised.reset_index(drop=True),
            spots=_closes(features),
            surfaces=fit_surfaces(features),
            smiles=smiles,
            contract_ivs=contract_ivs(features),
            fallbacks=tuple(_plain(f) for f in fallbacks),
        )

    @classmethod
    def merged(cls, parts: Sequence[MarketState], features: pd.DataFrame) -> MarketState:
        """One day's state from `parts`, the states `from_day` built on disjoint sets of its
        underlyings (pipeline.feature_shards), and the day's whole feature table: the state
        `from_day` builds on the whole day. Realised vols, surfaces, smiles and fallbacks list
        underlyings in sorted order (smiles and fallbacks then by expiry), each underlying's
        rows coming from one part: a stable sort by underlying of the parts' rows gives the
        whole day's. Closes and contract IVs (in feature row order) are read off `features`."""
        first = parts[0]
        return replace(
            first,
            realised=_by_underlying([p.realised for p in parts]),
            spots=_closes(features),
            surfaces=_by_underlying([p.surfaces for p in parts]),
            smiles=_by_underlying([p.smiles for p in parts]),
            contract_ivs=contract_ivs(features),
            fallbacks=tuple(
                sorted((f for p in parts for f in p.fallbacks), key=lambda f: f["underlying"])
            ),  # fmt: skip
        )

    @property
    def underlyings(self) -> frozenset[str]:
        """Underlyings this state can price (a close and a fitted surface or smile)."""
        return memo(self, "underlyings", _underlyings)

    @property
    def market(self) -> SimpleNamespace:
        """The conventions in the shape of cfg.market (what `contract_geometry` reads)."""
        return SimpleNamespace(rate=self.rate, default_dividend_yield=self.default_dividend_yield,
                               dividend_yields=dict(self.dividend_yields))  # fmt: skip

    # -- strict JSON, one file ---------------------------------------------------------------
    def to_dict(self) -> dict:
        smiles = self.smiles.assign(
            expiry=pd.to_datetime(self.smiles["expiry"]).dt.strftime("%Y-%m-%d")
        )
        return {
            "format_version": FORMAT_VERSION,
            "as_of": self.as_of.isoformat(),
            "rate": self.rate,
            "default_dividend_yield": self.default_dividend_yield,
            "dividend_yields": self.dividend_yields,
            "spots": {str(k): float(v) for k, v in self.spots.items()},
            "realised": _records(self.realised),
            "surfaces": _records(self.surfaces),
            "smiles": _records(smiles),
            "fallbacks": list(self.fallbacks),
            "contract_ivs": {"option": [str(o) for o in self.contract_ivs.index],
                             "iv": [float(v) for v in self.contract_ivs.to_numpy(float)]},
        }  # fmt: skip

    def save(self, path: Path) -> Path:
        """Write the state as one JSON file, atomically (pipeline.artifacts.write_json)."""
        from pipeline.artifacts import write_json

        return write_json(self.to_dict(), Path(path))

    @classmethod
    def from_dict(cls, doc: dict, where: str = "state") -> MarketState:
        if doc.get("format_version") != FORMAT_VERSION:
            raise ValueError(f"{where}: market-state format {doc.get('format_version')}, expected "
                             f"{FORMAT_VERSION} (written by an older feature_engineer: rebuild it)")  # fmt: skip
        smiles = _frame(doc["smiles"], list(SLICE_COLUMNS), text=("underlying", "source"))
        smiles["expiry"] = pd.to_datetime(smiles["expiry"])
        ivs = doc["contract_ivs"]
        return cls(
            as_of=dt.date.fromisoformat(doc["as_of"]),
            rate=float(doc["rate"]),
            default_dividend_yield=float(doc["default_dividend_yield"]),
            dividend_yields={k: float(v) for k, v in doc["dividend_yields"].items()},
            realised=_frame(doc["realised"], ["underlying"]),
            spots=pd.Series(doc["spots"], dtype=float),
            surfaces=_frame(doc["surfaces"], ["underlying", *SURFACE_COEFS]),
            smiles=smiles,
            contract_ivs=pd.Series(np.asarray(ivs["iv"], float), index=np.asarray(ivs["option"], object)),
            fallbacks=tuple(doc.get("fallbacks", ())),
        )  # fmt: skip

    @classmethod
    def load(cls, path: Path) -> MarketState:
        path = Path(path)
        return cls.from_dict(json.loads(path.read_text()), str(path.name))

    def as_read(self) -> MarketState:
        """This state as `load` reads it from the file `save` writes (column order, types and
        NaNs as there), without the file."""
        from pipeline.artifacts import json_text

        return MarketState.from_dict(json.loads(json_text(self.to_dict())))


def _closes(features: pd.DataFrame) -> pd.Series:
    """Per underlying (sorted), its spot in a day's feature table."""
    return features.groupby("underlying", sort=True)["spot"].first().astype(float)


def _by_underlying(frames: Sequence[pd.DataFrame]) -> pd.DataFrame:
    """Per-underlying tables of disjoint underlyings, each in underlying order, as one table in
    underlying order (`MarketState.merged`). Empty tables are left out: their column types
    (object where `from_day` found nothing to fit) would change the others'."""
    filled = [f for f in frames if len(f)] or list(frames[:1])
    merged = pd.concat(filled, ignore_index=True)
    return merged.sort_values("underlying", kind="stable", ignore_index=True)


def _underlyings(state: MarketState) -> frozenset[str]:
    fitted = set(state.surfaces["underlying"]) | set(state.smiles["underlying"])
    return frozenset(set(state.spots.index) & fitted)


_MEMO: dict[tuple[int, str], object] = {}
_MEMO_LOCK = threading.Lock()


def memo(state: MarketState, name: str, build):
    """`build(state)`, worked out once per state object and `name` (a MarketState is immutable):
    kept beside the state, not in it (its __dict__ stays its fields), and dropped when the
    state is garbage-collected."""
    key = (id(state), name)
    hit = _MEMO.get(key)
    if hit is None:
        value = build(state)
        with _MEMO_LOCK:
            hit = _MEMO.get(key)
            if hit is None:
                hit = _MEMO[key] = value
                weakref.finalize(state, _MEMO.pop, key, None)
    return hit


def _plain(obj):
    """numpy scalars and timestamps → JSON-ready values."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, pd.Timestamp | np.datetime64 | dt.date):
        return str(pd.Timestamp(obj).date())
    return obj


def _records(frame: pd.DataFrame) -> dict:
    """Column-wise JSON (NaN → null, so the file stays strict JSON)."""
    return {
        c: [
            None if isinstance(v, float) and math.isnan(v) else _plain(v) for v in frame[c].tolist()
        ]
        for c in frame.columns
    }


def _frame(
    columns: dict, required: list[str], text: Iterable[str] = ("underlying",)
) -> pd.DataFrame:
    df = pd.DataFrame(columns)
    text = set(text)
    for c in required:
        if c not in df:
            df[c] = pd.Series(dtype=object if c in text else float)
    numeric = [c for c in df.columns if c not in text and c != "expiry"]
    df[numeric] = df[numeric].astype(float)  # null → NaN
    present = [c for c in df.columns if c in text]
    df[present] = df[present].astype(object)  # an empty column is read as float
    # the written order (JSON keys are sorted): required columns first, rv_* by window
    rest = sorted((c for c in df.columns if c not in required),
                  key=lambda c: (len(c), c))  # fmt: skip
    return df[[*required, *rest]]


# -- the features a state gives a contract -------------------------------------------------------
def state_features(geometry: pd.DataFrame, state: MarketState | None) -> pd.DataFrame:
    """Market-state features of contracts (geometry: contract_geometry's output, with `option`
    when known) from `state` (None: every feature unknown, NaN). The same function builds the
    training features and prices a request: nothing else can differ between the two."""
    g = geometry
    out = pd.DataFrame(index=g.index)
    if state is None:
        state = MarketState(as_of=dt.date.min, rate=0.0, default_dividend_yield=0.0)
    rv = g[["underlying"]].merge(state.realised, on="underlying", how="left").set_index(g.index)
    for col in sorted({*RV_COLUMNS, *(c for c in state.realised.columns if c.startswith("rv_"))}):
        out[col] = rv[col].astype(float) if col in rv else np.nan
    out["vol_time"] = out["rv_20d"] * g["sqrt_t"]
    out["prev_iv"] = g["option"].map(state.contract_ivs).astype(float) if "option" in g else np.nan
    coefs = g[["underlying"]].merge(state.surfaces, on="underlying", how="left").set_index(g.index)
    c = coefs[list(SURFACE_COEFS)].to_numpy(float)
    x, s = g["std_moneyness"].to_numpy(float), g["sqrt_t"].to_numpy(float)
    out["prev_surface_iv"] = np.einsum("ij,ij->i", _surface_design(x, s), c)
    out["prev_atm_iv"] = np.einsum("ij,ij->i", _surface_design(np.zeros_like(s), s), c)
    out["prev_skew"] = c[:, 1] + c[:, 4] * s  # d iv / d (k/√T) at the money
    spot_prev = g["underlying"].map(state.spots).to_numpy(float)
    with np.errstate(divide="ignore", invalid="ignore"):
        out["spot_return"] = np.log(g["spot"].to_numpy(float) / spot_prev)
    k = g["log_moneyness"].to_numpy(float)
    args = (state.smiles, g["underlying"].to_numpy(), pd.to_datetime(g["expiry"]).to_numpy(),
            pd.to_datetime(g["quote_date"]).to_numpy())  # fmt: skip
    if len(state.smiles) and len(g):
        out["prev_smile_iv"] = smile.smile_iv(*args, k)  # sticky moneyness
        # sticky strike: yesterday's smile where this strike stood against yesterday's forward
        k_strike = k + np.nan_to_num(out["spot_return"].to_numpy(float))
        out["prev_smile_iv_strike"] = smile.smile_iv(*args, k_strike)
    else:
        out["prev_smile_iv"] = np.nan
        out["prev_smile_iv_strike"] = np.nan
    # an underlying with no fitted slice (too few quotes): its smile base is the quadratic
    for col in ("prev_smile_iv", "prev_smile_iv_strike"):
        out[col] = out[col].fillna(out["prev_surface_iv"])
    return out


# -- where states live, and which one prices a quote date ----------------------------------------
def state_path(folder: Path, day: dt.date) -> Path:
    return Path(folder) / f"{STATE_PREFIX}{day:%Y%m%d}.json"


class StateStore:
    """Daily states in `folder` (`market_state_YYYYMMDD.json`), plus any `bundled` ones (a model's
    own training-day state), looked up for a quote date as **the state of the last trading day
    before it**, or an older one at most `max_age_days` trading days before the quote date
    (1 = only the previous trading day's). Files are re-read when they change (a daily run's new
    state is picked up at the next lookup: no restart, no retrain). Per call a lookup costs a
    dict hit and one os.stat per candidate day (the file's (mtime, size) is the validity check):
    the calendar work and the file paths of a quote date are worked out once."""

    CACHE_SIZE = 8
    DAYS_CACHE_SIZE = 4096  # quote date → its candidate state days (pure calendar arithmetic)

    def __init__(self, folder: Path | str | None, max_age_days: int,
                 bundled: Iterable[MarketState] = ()):  # fmt: skip
        if int(max_age_days) < 1:
            raise ValueError(f"max_age_days must be at least 1, got {max_age_days}")
        self.folder = Path(folder) if folder else None
        self.max_age_days = int(max_age_days)
        self.bundled = {s.as_of: s for s in bundled}
        self._cache: dict[dt.date, tuple[tuple[int, int], MarketState]] = {}
        self._lock = threading.Lock()
        self._days: dict[dt.date, tuple[dt.date, tuple[dt.date, ...]]] = {}
        self._paths: dict[dt.date, str] = {}

    @classmethod
    def of(cls, state: MarketState, max_age_days: int = 1) -> StateStore:
        """A store holding just `state` (tests, a model priced with its own training state)."""
        return cls(None, max_age_days, [state])

    def _from_file(self, day: dt.date) -> MarketState | None:
        if self.folder is None:
            return None
        path = self._paths.get(day)
        if path is None:
            path = self._paths[day] = str(state_path(self.folder, day))
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None
        key = (st.st_mtime_ns, st.st_size)
        with self._lock:
            hit = self._cache.get(day)
        if hit and hit[0] == key:
            return hit[1]
        state = MarketState.load(path)
        with self._lock:
            self._cache[day] = (key, state)
            while len(self._cache) > self.CACHE_SIZE:
                self._cache.pop(min(self._cache))
        return state

    def get(self, day: dt.date) -> MarketState | None:
        """The state of trading day `day`, if there is one."""
        return self._from_file(day) or self.bundled.get(day)

    def lookup(self, quote_date) -> MarketState:
        """The state that prices contracts quoted on `quote_date`; StateUnavailable otherwise."""
        quote_date = pd.Timestamp(quote_date).date()
        wanted, days = self._candidates(quote_date)
        for day in days:
            state = self.get(day)
            if state is not None:
                return state
        raise StateUnavailable(self._missing(quote_date, wanted))

    def _candidates(self, quote_date: dt.date) -> tuple[dt.date, tuple[dt.date, ...]]:
        """(the trading day before `quote_date`, the days whose state may price it, newest
        first), memoised: calendar arithmetic only, the same answer every time."""
        hit = self._days.get(quote_date)
        if hit is not None:
            return hit
        try:
            wanted = previous_trading_day(quote_date)
            days = tuple(shift_trading_days(wanted, -age) for age in range(self.max_age_days))
        except ValueError as exc:  # before or after the trading calendar: no session, no state
            raise StateUnavailable(f"no market state for quote_date {quote_date}: {exc}") from None
        if len(self._days) >= self.DAYS_CACHE_SIZE:
            self._days.clear()
            self._paths.clear()
        self._days[quote_date] = (wanted, days)
        return wanted, days

    def newest_before(self, day: dt.date) -> dt.date | None:
        """The newest state date strictly before `day` (files and bundled), for messages."""
        days = [d for d in self.bundled if d < day]
        if self.folder is not None and self.folder.is_dir():
            for p in self.folder.glob(f"{STATE_PREFIX}*.json"):
                try:
                    d = dt.datetime.strptime(p.stem[len(STATE_PREFIX) :], "%Y%m%d").date()
                except ValueError:
                    continue
                if d < day:
                    days.append(d)
        return max(days) if days else None

    def _missing(self, quote_date: dt.date, wanted: dt.date) -> str:
        newest = self.newest_before(quote_date)
        allowed = (
            f"the state of {wanted}"
            if self.max_age_days == 1
            else f"a state from {shift_trading_days(wanted, -(self.max_age_days - 1))}..{wanted}"
        )
        if newest is None:
            has = "no market state before it at all"
        else:
            age = len(trading_days(newest, quote_date)) - 1
            has = f"the newest state before it is {newest} ({age} trading days old)"
        return (f"no market state for quote_date {quote_date}: it needs {allowed} "
                f"(max_state_age_days={self.max_age_days}); {has}")  # fmt: skip
