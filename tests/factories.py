"""Small, hand-checkable quote tables for unit tests."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
from omegaconf import OmegaConf

from pipeline.market.parse import RAW_COLUMNS
from pipeline.quant.black_scholes import bsm_price

DAY = dt.date(2026, 3, 2)
# the market conventions good_quotes are priced with (r = 4%, SPY q = 1%)
MARKET = OmegaConf.create(
    {"rate": 0.04, "default_dividend_yield": 0.0, "dividend_yields": {"SPY": 0.01}}
)
# data_validate settings loose enough that only the rule under test decides
VALIDATE = OmegaConf.create(
    {
        "max_bad_row_share": 0.5,
        "max_null_rate": 0.5,
        "arbitrage_tolerance": 0.01,
        "max_quote_age_days": 4,
    }
)


def good_quotes(
    n: int = 12, day: dt.date = DAY, spot: float = 600.0, vol: float = 0.2
) -> pd.DataFrame:
    """n clean SPY quotes priced with BSM (r=4%, q=1%) at `vol`, a 2-cent spread around the price."""
    strikes = np.linspace(560, 640, n)
    expiry = pd.Timestamp("2026-04-17")
    is_call = np.arange(n) % 2 == 0
    t = (expiry - pd.Timestamp(day)).days / 365
    price = bsm_price(spot, strikes, t, 0.04, 0.01, vol, is_call)
    df = pd.DataFrame(
        {
            "quote_time": pd.Timestamp(day) + pd.Timedelta("16:15:00"),
            "quote_date": pd.Timestamp(day),
            "underlying": "SPY",
            "spot": spot,
            "option": [
                f"SPY260417{'C' if c else 'P'}{int(k * 1000):08d}"
                for c, k in zip(is_call, strikes, strict=True)
            ],
            "root": "SPY",
            "expiry": expiry,
            "option_type": np.where(is_call, "C", "P").astype(object),
            "strike": strikes,
            "bid": np.round(price - 0.01, 2),
            "ask": np.round(price + 0.01, 2),
            "bid_size": 10.0,
            "ask_size": 12.0,
            "volume": 5.0,
            "open_interest": 100.0,
            "vendor_iv": 0.2,
            "last_trade_price": price,
            "last_trade_time": pd.Timestamp(day) + pd.Timedelta("15:59:00"),
            "delta": 0.5,
            "gamma": 0.01,
            "vega": 0.5,
            "theta": -0.1,
            "rho": 0.1,
            "theo": price,
        }
    )
    return df.astype(RAW_COLUMNS)
