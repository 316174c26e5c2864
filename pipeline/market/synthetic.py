"""The embedded deterministic market: Cboe-shaped option chains keyed by (seed, symbol, date).

    generate_chain(symbol, date, cfg, market) -> (payload, truth)
    generate_payload(symbol, date, cfg, market) -> payload   (the same, without the truth)
    generate_day(date, cfg, market, symbols=None) -> ({symbol: payload}, truth)
    spot_path(symbol, cfg, end_date) -> DataFrame(date, spot, variance, realised_variance, ...)
    day_market(symbol, date, cfg, market) -> DayMarket   (the day's spot, smiles and chain rules)
    symbols_of(cfg) -> [symbol]   (the configured list, or `n_underlyings` of them: see
                                   `synthetic_universe`)

`cfg` is a `SyntheticMarketConfig` and `market` a `MarketConfig`, as dataclasses or OmegaConf nodes
(read by attribute only). `date` is a `datetime.date`, a Timestamp or 'YYYY-MM-DD'; it must be a
trading day on or after `cfg.origin` (ValueError otherwise).

`payload` is exactly what Cboe's delayed-quotes endpoint returns for the symbol (see DOMAIN.md),
frozen at the close: `timestamp` "YYYY-MM-DD 16:15:00", counts as floats, `iv` 0.0 when missing,
`iv30` in percent, NaN prices as JSON null. `truth` is for tests and evaluation only, one row per
payload contract in payload order: row, symbol, date, option, root, expiry, option_type, strike,
t (years, ACT/365), spot, forward, discount, true_iv, true_price (NaN for expired rows), is_bad,
bad_reason (a `synthetic_bad_rows.BAD_KINDS` value, "zero_bid" on good zero-bid rows, else None).

Randomness is drawn from streams keyed by (seed, symbol, day) (`synthetic_path.day_rng`), and
paths are cached per configuration, so a payload never depends on what else was generated.

Families (`cfg.family`, FAMILIES):
- `ssvi` (the default): log-OU stochastic-vol spot paths (`synthetic_path`), SSVI smiles with
  sticky-moneyness dynamics, the default quote rules (`synthetic_quotes`);
- `sabr_jumps`: the same SV core with less common market factor (single-stock-like) plus Merton
  jumps (`jump_intensity`, `jump_mean`, `jump_std`; variance co-jumps on down-jumps), Hagan SABR
  smiles per expiry with sticky-strike dynamics and jump-steepened short expiries
  (`synthetic_sabr`; `sabr_beta`, `sabr_rho`, `sabr_vol_of_vol`), and single-stock quote rules:
  dollar strike grids with uneven wings and missing strikes, noisier mids, wider ITM spreads,
  stale deep-ITM quotes (`synthetic_jump_quotes`). The jump keys act on either family's path.
Both share `synthetic_bad_rows` (defects) and the payload/truth format.

Regime knobs, both families: on each shock date (`shock_dates`) variance ×`shock_size` (< 1: a
vol crush, the spot gapping up) and mean-reverts; from the shock date on, persistently, the
smile's skew is ×`shock_skew` (SSVI: ρη within η(1+|ρ|) ≤ 2, see
`synthetic_path.steepen_ssvi`; SABR: ρν) and strikes are listed ×`shock_strike_width` as wide
(strike_std_devs × factor); both compound once per shock date passed.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from pipeline.market.calendar import is_trading_day, to_date
from pipeline.market.occ import format_occ_symbol
from pipeline.market.synthetic_bad_rows import inject_bad_rows
from pipeline.market.synthetic_jump_quotes import build_jump_chain, grid_key
from pipeline.market.synthetic_path import (
    DT,
    MARKET_SHARE,
    Path,
    PathSpec,
    day_rng,
    get_path,
    knowable_variance,
    path_frame,
    regime_factor,
    smile_state,
)
from pipeline.market.synthetic_quotes import DayMarket, build_chain
from pipeline.market.synthetic_sabr import SabrShape, sabr_smile_state
from pipeline.market.synthetic_universe import symbols as symbols_of
from pipeline.market.synthetic_universe import universe

KINDS = ("etf", "index", "stock")
FAMILIES = ("ssvi", "sabr_jumps")
# share of each day's shock variance common to every underlying, by family
FAMILY_MARKET_SHARE = {"ssvi": MARKET_SHARE, "sabr_jumps": 0.35}
STALE_ITM_LAGS = 5  # sabr_jumps: stale deep-ITM quotes are 1..5 trading days old
OPTION_KEYS = (
    "option", "bid", "bid_size", "ask", "ask_size", "iv", "open_interest", "volume", "delta",
    "gamma", "vega", "theta", "rho", "theo", "change", "open", "high", "low", "tick",
    "last_trade_price", "last_trade_time", "percent_change", "prev_day_close",
)  # fmt: skip
DECIMALS = {"iv": 4, "delta": 4, "gamma": 4, "vega": 4, "theta": 4, "rho": 4, "theo": 4,
            "percent_change": 4, "change": 2, "prev_day_close": 2}  # fmt: skip
TRUTH_COLUMNS = (
    "row", "symbol", "date", "option", "root", "expiry", "option_type", "strike", "t", "spot",
    "forward", "discount", "true_iv", "true_price", "is_bad", "bad_reason",
)  # fmt: skip


def _opt(cfg, key: str, default):
    """cfg.key, or `default` for configs written before the key existed."""
    value = getattr(cfg, key, default)
    return default if value is None else value


def family(cfg) -> str:
    """The configured market family; ValueError naming the allowed ones otherwise."""
    name = str(_opt(cfg, "family", "ssvi"))
    if name not in FAMILIES:
        raise ValueError(
            f"unknown synthetic market family {name!r}; expected one of: {', '.join(FAMILIES)}"
        )
    return name


def _regime_knobs(cfg) -> tuple[float, float]:
    """(shock_skew, shock_strike_width), checked: skew ≥ 0, width > 0."""
    skew = float(_opt(cfg, "shock_skew", 1.0))
    width = float(_opt(cfg, "shock_strike_width", 1.0))
    if skew < 0 or width <= 0:
        raise ValueError(f"shock_skew must be ≥ 0 and shock_strike_width > 0; got {skew}, {width}")
    return skew, width


def _brief(symbols: list[str], shown: int = 12) -> list[str] | str:
    """`symbols` for an error message: all of them, or the first `shown` and a count."""
    if len(symbols) <= shown:
        return symbols
    return f"{symbols[:shown]} and {len(symbols) - shown} more"


def _path_spec(symbol: str, cfg) -> PathSpec:
    """The configured underlying `symbol` as a PathSpec; ValueError naming unknown symbols."""
    fam = family(cfg)
    names = universe(cfg)
    known = [u.symbol for u in names]
    if symbol not in known:
        raise ValueError(f"unknown synthetic underlying {symbol!r}; configured: {_brief(known)}")
    u = names[known.index(symbol)]
    if u.kind not in KINDS:
        raise ValueError(f"underlying {symbol!r} has kind {u.kind!r}; expected one of {KINDS}")
    return PathSpec(
        seed=int(cfg.seed),
        symbol=str(u.symbol),
        kind=str(u.kind),
        origin=to_date(cfg.origin),
        spot=float(u.spot),
        vol=float(u.vol),
        vol_of_vol=float(cfg.vol_of_vol),
        mean_reversion=float(cfg.mean_reversion),
        leverage=float(cfg.leverage),
        shock_dates=tuple(sorted(to_date(d) for d in (cfg.shock_dates or ()))),
        shock_size=float(cfg.shock_size),
        market_share=FAMILY_MARKET_SHARE[fam],
        jump_intensity=float(_opt(cfg, "jump_intensity", 0.0)),
        jump_mean=float(_opt(cfg, "jump_mean", 0.0)),
        jump_std=float(_opt(cfg, "jump_std", 0.0)),
    )


def _smile(spec: PathSpec, path: Path, i: int, cfg, carry: float):
    """The family's smile at path day `i`, with the skew regime of that day. `carry` = r − q
    places the SABR family's anchor forward (it does not change `atm_vol`)."""
    skew = regime_factor(spec, path.dates[i], _regime_knobs(cfg)[0])
    premium = float(cfg.vol_premium)
    if family(cfg) == "ssvi":
        return smile_state(spec, path, i, premium, skew=skew)
    shape = SabrShape(
        beta=float(_opt(cfg, "sabr_beta", 0.7)),
        rho=float(_opt(cfg, "sabr_rho", -0.35)),
        nu=float(_opt(cfg, "sabr_vol_of_vol", 0.9)),
    )
    return sabr_smile_state(spec, path, i, premium, carry, shape, skew=skew)


def spot_path(symbol: str, cfg, end_date) -> pd.DataFrame:
    """Daily path of `symbol` from `cfg.origin` through `end_date`: date, spot (close),
    variance (instantaneous, annualised), realised_variance (EWMA), open, high, low, volume, jump,
    and iv30 (the 30-day ATM implied vol the chains are priced with, as a fraction)."""
    spec, end = _path_spec(symbol, cfg), to_date(end_date)
    frame = path_frame(spec, end)
    path = get_path(spec, end)
    frame["iv30"] = [
        float(_smile(spec, path, i, cfg, 0.0).atm_vol(30 / 365)) for i in range(len(frame))
    ]
    return frame


def _dividend_yield(market, symbol: str) -> float:
    yields = market.dividend_yields or {}
    return float(yields.get(symbol, market.default_dividend_yield))


def generate_chain(symbol: str, date, cfg, market) -> tuple[dict, pd.DataFrame]:
    """One underlying's Cboe payload on `date` and its ground truth (see the module docstring)."""
    payload, chain, m = _generate(symbol, date, cfg, market)
    return payload, _truth(chain, m)


def knowable_truth(symbol: str, date, cfg, market) -> pd.DataFrame:
    """`generate_chain`'s ground truth with true_iv replaced by the IV of the smile that was
    knowable at the close without the option quotes (`knowable_variance`: the day's return
    reveals part of the vol shock, the rest averages out); every other column as it is."""
    spec, path, i, m = _day(symbol, date, cfg, market)
    truth = generate_chain(symbol, date, cfg, market)[1]
    variance = list(path.var)
    variance[i] = knowable_variance(spec, path, i)
    seen = Path(dates=path.dates, spot=path.spot, var=variance, rv=path.rv)
    smile = _smile(spec, seen, i, cfg, m.rate - m.dividend_yield)
    priced = np.isfinite(truth["true_iv"].to_numpy(float))  # not the expired bad rows
    iv = np.full(len(truth), np.nan)
    iv[priced] = smile.strike_vol(truth["strike"].to_numpy(float)[priced],
                                  truth["forward"].to_numpy(float)[priced],
                                  truth["t"].to_numpy(float)[priced])  # fmt: skip
    return truth.assign(true_iv=iv)


def generate_payload(symbol: str, date, cfg, market) -> dict:
    """`generate_chain` without the ground truth, for data_fetch (building it costs ~20 ms a day)."""
    return _generate(symbol, date, cfg, market)[0]


def day_market(symbol: str, date, cfg, market) -> DayMarket:
    """What `symbol`'s chain on `date` is built from: quoted spot, rates, today's and the previous
    close's smiles, strike width (with its regime factor) and maximum expiry."""
    return _day(symbol, date, cfg, market)[3]


def _day(symbol: str, date, cfg, market) -> tuple[PathSpec, Path, int, DayMarket]:
    spec = _path_spec(symbol, cfg)
    day = to_date(date)
    if not is_trading_day(day):
        raise ValueError(f"{day} is not a trading day: the synthetic market has no quotes")
    path = get_path(spec, day)
    if day not in path.index:
        raise ValueError(f"{day} is before the synthetic market's origin {spec.origin}")
    i = path.index[day]
    prev = max(i - 1, 0)
    rate, q = float(market.rate), _dividend_yield(market, symbol)
    width = regime_factor(spec, day, _regime_knobs(cfg)[1])
    m = DayMarket(
        symbol=symbol,
        kind=spec.kind,
        day=day,
        spot=round(path.spot[i], 2),  # price off the quoted spot, so consumers can reproduce it
        rate=rate,
        dividend_yield=q,
        smile=_smile(spec, path, i, cfg, rate - q),
        prev_gap_days=(day - path.dates[prev]).days,
        prev_spot=round(path.spot[prev], 2),
        prev_smile=_smile(spec, path, prev, cfg, rate - q),
        strike_std_devs=float(cfg.strike_std_devs) * width,
        max_years=float(cfg.max_expiry_years),
    )
    return spec, path, i, m


def _generate(symbol: str, date, cfg, market) -> tuple[dict, dict, DayMarket]:
    """(payload, the chain's columns in payload order, the day's market)."""
    spec, path, i, m = _day(symbol, date, cfg, market)
    day = m.day
    rng = day_rng(spec.seed, symbol, day, 1)
    if family(cfg) == "ssvi":
        chain = build_chain(m, rng)
    else:
        stale = tuple(
            round(path.spot[j], 2) for j in range(i - 1, max(i - STALE_ITM_LAGS, 0) - 1, -1)
        )
        chain = build_jump_chain(m, stale, rng, grid_key(spec.seed, symbol))
    lag = int(rng.integers(2, 9))  # stale quotes were made this many trading days ago
    stale_spot = (
        path.spot[i - lag]
        if i >= lag
        else m.spot * math.exp(rng.choice([-3.0, 3.0]) * math.sqrt(path.var[i] * DT))
    )
    chain = inject_bad_rows(chain, m, stale_spot, float(cfg.bad_row_rate), rng)
    order = np.lexsort((chain["copy"], chain["strike"], ~chain["is_call"], chain["expiry"]))
    chain = {key: values[order] for key, values in chain.items()}
    chain["option"] = _occ_symbols(chain)
    payload = {
        "timestamp": f"{day.isoformat()} 16:15:00",
        "symbol": symbol,
        "data": {**_underlying_fields(spec, path, i, m), "options": _options(chain)},
    }
    return payload, chain, m


def generate_day(date, cfg, market, symbols=None) -> tuple[dict[str, dict], pd.DataFrame]:
    """Payloads of every configured underlying (or of `symbols`, in that order) on `date`, and
    their truths concatenated (ValueError naming any unknown symbol before generating anything)."""
    known = symbols_of(cfg)
    wanted = known if symbols is None else list(symbols)
    unknown = [s for s in wanted if s not in known]
    if unknown:
        raise ValueError(f"unknown synthetic underlyings {unknown}; configured: {_brief(known)}")
    payloads, truths = {}, []
    for symbol in wanted:
        payloads[symbol], truth = generate_chain(symbol, date, cfg, market)
        truths.append(truth)
    truth = pd.concat(truths, ignore_index=True) if truths else pd.DataFrame(columns=TRUTH_COLUMNS)
    return payloads, truth


def _occ_symbols(chain: dict) -> np.ndarray:
    """OCC symbols of every row. `format_occ_symbol` renders each distinct root + expiry once
    (its first 6–12 characters); the type letter and 8 strike digits are appended here, because
    per-row formatting costs ~10 µs × 20k rows a day."""
    prefix = {}
    for root, expiry in set(zip(chain["root"].tolist(), chain["expiry"].tolist(), strict=True)):
        prefix[root, expiry] = format_occ_symbol(root, expiry, "C", 0.0)[:-9]
    milli = np.rint(chain["strike"] * 1000).astype(np.int64).tolist()
    rows = zip(
        chain["root"].tolist(),
        chain["expiry"].tolist(),
        chain["is_call"].tolist(),
        milli,
        strict=True,
    )
    return np.array(
        [f"{prefix[r, e]}{'C' if c else 'P'}{m:08d}" for r, e, c, m in rows], dtype=object
    )


def _jsonable(values: np.ndarray, decimals: int | None) -> list:
    """Column → JSON-ready list: rounded floats (no -0.0), NaN as None."""
    if values.dtype.kind != "f":
        return values.tolist()
    if decimals is not None:
        values = np.round(values, decimals) + 0.0
    out = values.tolist()
    return [None if v != v else v for v in out] if np.isnan(values).any() else out


def _options(chain: dict) -> list[dict]:
    columns = [_jsonable(chain[key], DECIMALS.get(key)) for key in OPTION_KEYS]
    # lengths checked once here: strict zips for each of ~20k rows a day cost ~15 ms
    if len({len(col) for col in columns}) != 1:
        raise ValueError("chain columns differ in length")
    return [dict(zip(OPTION_KEYS, row, strict=False)) for row in zip(*columns, strict=False)]


def _underlying_fields(spec: PathSpec, path, i: int, m: DayMarket) -> dict:
    """Cboe's underlying-level fields, consistent with the path (close = current_price)."""
    close, prev_close = m.spot, m.prev_spot
    iv30, iv30_prev = (100.0 * float(s.atm_vol(30 / 365)) for s in (m.smile, m.prev_smile))
    index = spec.kind == "index"
    half = round(max(0.0005 * close, 0.05), 2) if index else 0.01
    change = round(close - prev_close, 2)
    return {
        "symbol": "^" + spec.symbol.lstrip("_") if index else spec.symbol,
        "security_type": "index" if index else "stock",
        "exchange_id": 5 if index else 1,
        "current_price": close,
        "price_change": change,
        "price_change_percent": round(100.0 * (close / prev_close - 1.0), 4),
        "bid": round(close - half, 2),
        "ask": round(close + half, 2),
        "bid_size": 1.0 if index else 100.0 * (1 + i % 7),
        "ask_size": 1.0 if index else 100.0 * (1 + (3 * i) % 5),
        "open": round(path.open[i], 2),
        "high": round(max(path.high[i], close), 2),
        "low": round(min(path.low[i], close), 2),
        "close": close,
        "prev_day_close": prev_close,
        "volume": float(path.volume[i]),
        "iv30": round(iv30, 3),
        "iv30_change": round(iv30 - iv30_prev, 3),
        "iv30_change_percent": round(100.0 * (iv30 / iv30_prev - 1.0), 4),
        "seqno": m.day.toordinal() * 100_000 + spec.seed % 997 * 100 + i % 100,
        "last_trade_time": f"{m.day.isoformat()}T{'16:14:59' if index else '15:59:59'}",
        "tick": "up" if change > 0 else "down" if change < 0 else "no_change",
    }


def _truth(chain: dict, m: DayMarket) -> pd.DataFrame:
    n = len(chain["strike"])
    return pd.DataFrame(
        {
            "row": np.arange(n),
            "symbol": m.symbol,
            "date": pd.Timestamp(m.day),
            "option": chain["option"],
            "root": chain["root"],
            "expiry": chain["expiry"].astype("datetime64[ns]"),
            "option_type": np.where(chain["is_call"], "C", "P").astype(object),
            "strike": chain["strike"],
            "t": chain["t"],
            "spot": m.spot,
            "forward": chain["forward"],
            "discount": chain["discount"],
            "true_iv": chain["true_iv"],
            "true_price": chain["true_price"],
            "is_bad": chain["is_bad"],
            "bad_reason": chain["bad_reason"],
        },
        columns=list(TRUTH_COLUMNS),
    )
