"""The synthetic market's universe of underlyings: the configured list, or N of them.

    universe(cfg) -> list[Underlying]        (symbol, kind, spot, vol), in a fixed order
    symbols(cfg) -> list[str]

`cfg.n_underlyings` is the knob (`data_fetch.synthetic.n_underlyings=64`):
- None (the default): exactly `cfg.underlyings`, so the default market does not change;
- N: the first N configured underlyings, then generated single-stock names up to N. A generated
  name's ticker, spot and vol are drawn from a stream keyed by (seed, its index) alone, so the
  first 64 names of a 256-name market are the 64-name market, and N ≤ len(cfg.underlyings)
  takes a prefix of the configured list.

Generated spots are log-normal around $60 (most US optionable stocks trade between $5 and a few
hundred dollars), long-run vols log-normal around 32% (between 12% and 95%): the cross-section
of single-stock implied vols.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

STREAM = 0x0A17_5EED  # keeps the universe's draws apart from the path and quote streams
SPOT_MEDIAN, SPOT_LOG_SD, SPOT_RANGE = 60.0, 0.9, (5.0, 1500.0)
VOL_MEDIAN, VOL_LOG_SD, VOL_RANGE = 0.32, 0.35, (0.12, 0.95)
TICKER_LENGTHS = (3, 4)
MAX_UNDERLYINGS = 10_000


@dataclass(frozen=True)
class Underlying:
    symbol: str
    kind: str
    spot: float
    vol: float


def _configured(cfg) -> list[Underlying]:
    return [
        Underlying(str(u.symbol), str(u.kind), float(u.spot), float(u.vol)) for u in cfg.underlyings
    ]


def _count(cfg) -> int | None:
    """cfg.n_underlyings checked (None, or an integer in 1..MAX_UNDERLYINGS)."""
    n = getattr(cfg, "n_underlyings", None)
    if n is None:
        return None
    if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= MAX_UNDERLYINGS:
        raise ValueError(
            f"data_fetch.synthetic.n_underlyings={n!r}: expected null (the configured list) or "
            f"an integer from 1 to {MAX_UNDERLYINGS}"
        )
    return n


def _generated(seed: int, index: int, taken: set[str]) -> Underlying:
    """The generated stock number `index`: a ticker not in `taken`, a spot and a vol."""
    rng = np.random.default_rng([int(seed) % 2**32, STREAM, index])
    spot = SPOT_MEDIAN * math.exp(SPOT_LOG_SD * rng.standard_normal())
    vol = VOL_MEDIAN * math.exp(VOL_LOG_SD * rng.standard_normal())
    while True:
        letters = rng.integers(0, 26, size=int(rng.choice(TICKER_LENGTHS)))
        symbol = "".join(chr(ord("A") + int(k)) for k in letters)
        if symbol not in taken:
            break
    return Underlying(
        symbol=symbol,
        kind="stock",
        spot=round(min(max(spot, SPOT_RANGE[0]), SPOT_RANGE[1]), 2),
        vol=round(min(max(vol, VOL_RANGE[0]), VOL_RANGE[1]), 4),
    )


@lru_cache(maxsize=32)
def _universe(configured: tuple[Underlying, ...], seed: int, n: int) -> tuple[Underlying, ...]:
    names = list(configured[:n])
    taken = {u.symbol for u in configured}
    for index in range(n - len(names)):
        name = _generated(seed, index, taken)
        taken.add(name.symbol)
        names.append(name)
    return tuple(names)


def universe(cfg) -> list[Underlying]:
    """The market's underlyings (see the module docstring); `cfg` is a SyntheticMarketConfig."""
    configured = _configured(cfg)
    n = _count(cfg)
    if n is None:
        return configured
    return list(_universe(tuple(configured), int(cfg.seed), n))


def symbols(cfg) -> list[str]:
    return [u.symbol for u in universe(cfg)]
