"""MarketState: the market-state inputs of the model, as of one day, saved with the model.

A contract's own fields (strike, expiry, spot, ...) do not say what the market looked like
yesterday; the model also reads the underlying's realised vols and the previous day's implied-vol
surface (see feature_engineer.state_features). A MarketState holds them for one day `as_of`:

- `realised`: one row per underlying, its `rv_*` columns (as the day's feature file has them);
- `surfaces`: one row per underlying, the fitted surface and smile coefficients (`fit_surfaces`);
- `contract_ivs`: option (OCC symbol) → reliable IV of that day (`contract_ivs`);
- `rate`, `default_dividend_yield`, `dividend_yields`: the market conventions (cfg.market).

Saved as a folder: `state.json` (conventions, realised vols and surfaces, human-readable) and
`contract_ivs.parquet` (one row per contract). No pickle.
"""

from __future__ import annotations

import datetime as dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from pipeline.feature_engineer import SMILE_COEFS, SURFACE_COEFS, contract_ivs, fit_surfaces

STATE_FILE = "state.json"
CONTRACT_IVS_FILE = "contract_ivs.parquet"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class MarketState:
    as_of: dt.date
    rate: float
    default_dividend_yield: float
    dividend_yields: dict[str, float] = field(default_factory=dict)
    realised: pd.DataFrame = field(default_factory=lambda: pd.DataFrame({"underlying": []}))
    surfaces: pd.DataFrame = field(
        default_factory=lambda: pd.DataFrame(columns=["underlying", *SURFACE_COEFS, *SMILE_COEFS])
    )
    contract_ivs: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))

    @classmethod
    def from_features(cls, features: pd.DataFrame, market, as_of: dt.date) -> MarketState:
        """The state of day `as_of` from that day's feature table and the `market` config."""
        rv_cols = [c for c in features.columns if c.startswith("rv_")]
        realised = (
            features.groupby("underlying", sort=True)[rv_cols].first().reset_index()
            if len(features)
            else pd.DataFrame(columns=["underlying", *rv_cols])
        )
        return cls(
            as_of=as_of,
            rate=float(market.rate),
            default_dividend_yield=float(market.default_dividend_yield),
            dividend_yields={str(k): float(v) for k, v in dict(market.dividend_yields).items()},
            realised=realised,
            surfaces=fit_surfaces(features),
            contract_ivs=contract_ivs(features).astype(float),
        )

    @property
    def underlyings(self) -> set[str]:
        """Underlyings with any saved state (realised vols or a fitted surface)."""
        return set(self.realised["underlying"]) | set(self.surfaces["underlying"])

    @property
    def market(self) -> SimpleNamespace:
        """The conventions in the shape of cfg.market (what `contract_geometry` reads)."""
        return SimpleNamespace(
            rate=self.rate,
            default_dividend_yield=self.default_dividend_yield,
            dividend_yields=dict(self.dividend_yields),
        )

    def save(self, directory: Path) -> Path:
        """Write `state.json` and `contract_ivs.parquet` into `directory`; returns it."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        doc = {
            "format_version": FORMAT_VERSION,
            "as_of": self.as_of.isoformat(),
            "rate": self.rate,
            "default_dividend_yield": self.default_dividend_yield,
            "dividend_yields": self.dividend_yields,
            "realised": _records(self.realised),
            "surfaces": _records(self.surfaces),
        }
        (directory / STATE_FILE).write_text(json.dumps(doc, indent=2, allow_nan=False) + "\n")
        ivs = pd.DataFrame({"option": self.contract_ivs.index.astype(str), "iv": self.contract_ivs})
        ivs.to_parquet(directory / CONTRACT_IVS_FILE, index=False)
        return directory

    @classmethod
    def load(cls, directory: Path) -> MarketState:
        """Read a state written by `save`."""
        directory = Path(directory)
        doc = json.loads((directory / STATE_FILE).read_text())
        if doc.get("format_version") != FORMAT_VERSION:
            raise ValueError(
                f"{directory / STATE_FILE}: unknown format {doc.get('format_version')}"
            )
        ivs = pd.read_parquet(directory / CONTRACT_IVS_FILE)
        return cls(
            as_of=dt.date.fromisoformat(doc["as_of"]),
            rate=float(doc["rate"]),
            default_dividend_yield=float(doc["default_dividend_yield"]),
            dividend_yields={k: float(v) for k, v in doc["dividend_yields"].items()},
            realised=_frame(doc["realised"], ["underlying"]),
            surfaces=_frame(doc["surfaces"], ["underlying", *SURFACE_COEFS, *SMILE_COEFS]),
            contract_ivs=pd.Series(ivs["iv"].to_numpy(float), index=ivs["option"].to_numpy()),
        )


def _records(frame: pd.DataFrame) -> dict:
    """Column-wise JSON (NaN → null, so the file stays strict JSON)."""
    return {
        c: [None if isinstance(v, float) and math.isnan(v) else v for v in frame[c].tolist()]
        for c in frame.columns
    }


def _frame(columns: dict, required: list[str]) -> pd.DataFrame:
    df = pd.DataFrame(columns)
    for c in required:
        if c not in df:
            df[c] = pd.Series(dtype=object if c == "underlying" else float)
    numeric = [c for c in df.columns if c != "underlying"]
    df[numeric] = df[numeric].astype(float)  # null → NaN
    return df
