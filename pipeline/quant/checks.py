"""No-arbitrage checks on a set of model prices for quoted contracts (pure; no I/O).

Every check takes the contracts `frame` (columns: underlying, expiry, strike, is_call or
option_type, forward, discount; quote_date when several days are mixed; bid/ask to infer ticks)
and `prices`, one model price per row of `frame`, and returns a `Check`: how many pairs/ladder
points were checked, how many break the rule by more than the tolerance, and the offending rows.

- put-call parity: C − P − D(F − K) for the call and put of the same date/underlying/expiry/strike;
- strike shape: along each date/underlying/expiry/type strike ladder, calls non-increasing and
  puts non-decreasing in strike (adjacent strikes), both convex (butterflies ≥ 0 on adjacent triples,
  weights from the actual strike gaps);
- bounds: D·max(F − K, 0) ≤ C ≤ D·F and D·max(K − F, 0) ≤ P ≤ D·K; a non-finite price is outside.

The tolerance is one price tick per underlying (an "arbitrage" smaller than a tick cannot be traded).
By default the tick is inferred from the quotes: the smallest positive bid-ask spread seen for the
underlying, clipped to [$0.01, $0.10] ($0.01 when there are no quotes). With bid/ask present, the
parity and shape checks also report `share_beyond_spread`: breaches larger than the half-spreads of
the legs involved, i.e. ones that would survive trading at the quoted bid/ask (for reference).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

MIN_TICK, MAX_TICK = 0.01, 0.10


@dataclass(frozen=True)
class Check:
    """Outcome of one rule: `violations` of `checked` items; `details` lists the violating items."""

    name: str
    checked: int
    violations: int
    details: pd.DataFrame
    stats: dict[str, float] = field(default_factory=dict)

    @property
    def share(self) -> float:
        return self.violations / self.checked if self.checked else 0.0

    def summary(self) -> dict[str, float]:
        return {
            "share": self.share,
            "checked": float(self.checked),
            "violations": float(self.violations),
            **self.stats,
        }


def infer_ticks(frame: pd.DataFrame) -> pd.Series:
    """Per row: the tick of its underlying (smallest positive quoted spread, within [1c, 10c])."""
    if not {"bid", "ask"} <= set(frame.columns):
        return pd.Series(MIN_TICK, index=frame.index)
    spread = (frame["ask"].astype(float) - frame["bid"].astype(float)).round(4)
    positive = spread.where(spread > 0)
    tick = positive.groupby(frame["underlying"]).transform("min").fillna(MIN_TICK)
    return tick.clip(MIN_TICK, MAX_TICK)


def _prepare(frame: pd.DataFrame, prices, tick) -> pd.DataFrame:
    """The columns the checks need, one row per contract, with the price and tolerance attached."""
    prices = np.asarray(prices, float)
    if len(prices) != len(frame):
        raise ValueError(f"{len(prices)} prices for {len(frame)} contracts")
    is_call = frame["is_call"].astype(bool) if "is_call" in frame else frame["option_type"].eq("C")
    date = frame["quote_date"] if "quote_date" in frame else pd.Series(pd.NaT, index=frame.index)
    tol = (
        infer_ticks(frame)
        if tick is None
        else pd.Series(np.broadcast_to(tick, len(frame)), index=frame.index)
    )
    return pd.DataFrame(
        {
            "quote_date": date.to_numpy(),
            "underlying": frame["underlying"].to_numpy(),
            "expiry": frame["expiry"].to_numpy(),
            "strike": frame["strike"].to_numpy(float),
            "is_call": is_call.to_numpy(bool),
            "forward": frame["forward"].to_numpy(float),
            "discount": frame["discount"].to_numpy(float),
            "price": prices,
            "tol": tol.to_numpy(float),
            "hs": (0.5 * (frame["ask"] - frame["bid"])).to_numpy(float)
            if {"bid", "ask"} <= set(frame)
            else np.nan,
        },
        index=frame.index,
    )


LADDER = ["quote_date", "underlying", "expiry", "is_call"]


def parity_residuals(frame: pd.DataFrame, prices, tick=None) -> Check:
    """Put-call parity on every call/put pair: residual = C − P − D(F − K), breach if |residual| > tick.

    Details: one row per breaching pair (keys, strike, call, put, residual, tol), worst first."""
    return _parity(_prepare(frame, prices, tick))


def _parity(p: pd.DataFrame) -> Check:
    p = p[np.isfinite(p["price"])].drop_duplicates([*LADDER, "strike"])
    keys = ["quote_date", "underlying", "expiry", "strike"]
    calls, puts = p[p["is_call"]], p[~p["is_call"]]
    pairs = calls.merge(puts[[*keys, "price", "tol", "hs"]], on=keys, suffixes=("_call", "_put"))
    resid = (
        pairs["price_call"]
        - pairs["price_put"]
        - pairs["discount"] * (pairs["forward"] - pairs["strike"])
    )
    tol = np.maximum(pairs["tol_call"], pairs["tol_put"])
    details = pairs[keys].assign(
        call=pairs["price_call"], put=pairs["price_put"], residual=resid, tol=tol
    )
    bad = details[resid.abs() > tol]
    stats = {
        "mean_abs_residual": float(resid.abs().mean()) if len(resid) else 0.0,
        "max_abs_residual": float(resid.abs().max()) if len(resid) else 0.0,
        "share_beyond_spread": _share(resid.abs() > pairs["hs_call"] + pairs["hs_put"]),
    }
    return Check(
        "parity",
        len(details),
        len(bad),
        bad.reindex(bad["residual"].abs().sort_values(ascending=False).index),
        stats,
    )


def _ladders(p: pd.DataFrame) -> pd.DataFrame:
    """Rows sorted along each ladder by strike, with the previous/next strike's price on the row."""
    p = p[np.isfinite(p["price"])].drop_duplicates([*LADDER, "strike"])
    p = p.sort_values([*LADDER, "strike"], kind="mergesort")
    grp = p.groupby(LADDER, dropna=False, sort=False)
    return p.assign(
        k_prev=grp["strike"].shift(1),
        v_prev=grp["price"].shift(1),
        tol_prev=grp["tol"].shift(1),
        k_next=grp["strike"].shift(-1),
        v_next=grp["price"].shift(-1),
        tol_next=grp["tol"].shift(-1),
        hs_prev=grp["hs"].shift(1),
        hs_next=grp["hs"].shift(-1),
    )


def _share(flags: pd.Series) -> float:
    return float(np.mean(flags)) if len(flags) else 0.0


def strike_shape_violations(frame: pd.DataFrame, prices, tick=None) -> dict[str, Check]:
    """Monotonicity in strike (adjacent pairs) and convexity (adjacent triples) along each ladder.

    Returns {"monotonic": Check, "convexity": Check}; `excess` in the details is how far (in price)
    the rule is broken."""
    return _shape(_prepare(frame, prices, tick))


def _shape(p: pd.DataFrame) -> dict[str, Check]:
    lad = _ladders(p)
    # monotone: a call may not gain value as the strike rises, a put may not lose it
    step = lad.dropna(subset=["v_prev"])
    rise = step["price"] - step["v_prev"]
    mono_excess = np.where(step["is_call"], rise, -rise)
    mono_tol = np.maximum(step["tol"], step["tol_prev"])
    mono_breach = mono_excess > mono_tol
    mono_bad = step[mono_breach].assign(excess=mono_excess[mono_breach])
    mono_spread = _share(mono_excess > step["hs"] + step["hs_prev"])
    # convex: the middle price may not exceed the strike-weighted average of its neighbours
    mid = lad.dropna(subset=["v_prev", "v_next"])
    w = (mid["k_next"] - mid["strike"]) / (mid["k_next"] - mid["k_prev"])
    conv_excess = mid["price"] - (w * mid["v_prev"] + (1 - w) * mid["v_next"])
    conv_tol = np.maximum.reduce([mid["tol"], mid["tol_prev"], mid["tol_next"]])
    conv_breach = conv_excess > conv_tol
    conv_bad = mid[conv_breach].assign(excess=conv_excess[conv_breach])
    conv_spread = _share(conv_excess > w * mid["hs_prev"] + mid["hs"] + (1 - w) * mid["hs_next"])
    cols = [*LADDER, "k_prev", "strike", "k_next", "v_prev", "price", "v_next", "excess"]
    return {
        "monotonic": Check(
            "monotonic",
            len(step),
            len(mono_bad),
            mono_bad[cols].sort_values("excess", ascending=False),
            {"share_beyond_spread": mono_spread},
        ),
        "convexity": Check(
            "convexity",
            len(mid),
            len(conv_bad),
            conv_bad[cols].sort_values("excess", ascending=False),
            {"share_beyond_spread": conv_spread},
        ),
    }


def bounds_violations(frame: pd.DataFrame, prices, tick=None) -> Check:
    """Prices outside the no-arbitrage bounds by more than a tick (non-finite prices count as outside)."""
    return _bounds(_prepare(frame, prices, tick))


def _bounds(p: pd.DataFrame) -> Check:
    fk = p["forward"] - p["strike"]
    lower = p["discount"] * np.where(p["is_call"], np.maximum(fk, 0.0), np.maximum(-fk, 0.0))
    upper = p["discount"] * np.where(p["is_call"], p["forward"], p["strike"])
    price = p["price"]
    outside = ~np.isfinite(price) | (price < lower - p["tol"]) | (price > upper + p["tol"])
    details = p.assign(lower=lower, upper=upper)[outside]
    return Check(
        "bounds",
        len(p),
        int(outside.sum()),
        details,
        {"non_finite": float((~np.isfinite(price)).sum())},
    )


def run_checks(frame: pd.DataFrame, prices, tick=None) -> dict[str, Check]:
    """All checks: {"parity", "monotonic", "convexity", "bounds"} → Check (the contracts' columns
    and ticks prepared once for the three)."""
    p = _prepare(frame, prices, tick)
    return {"parity": _parity(p), **_shape(p), "bounds": _bounds(p)}
