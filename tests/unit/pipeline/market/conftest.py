"""Fixtures for market tests: a realistic Cboe delayed-quotes payload (SPY, seven contracts)."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

FIXTURES = Path(__file__).resolve().parents[3] / "fixtures" / "cboe"
_SPY = json.loads((FIXTURES / "spy_chain.json").read_text())


@pytest.fixture
def spy_payload() -> dict:
    """A fresh copy of tests/fixtures/cboe/spy_chain.json (quote date 2025-11-21, spot 659.03).

    Contracts, in order: 655 C/P 2025-12-05; 600 C/P 2026-08-21; a 900 C wing with bid 0 and
    iv 0.0 and no last trade (null); an expired 660 C 2025-11-14; a 652.5 P with last_trade_time "".
    """
    return copy.deepcopy(_SPY)


@pytest.fixture
def spy_raw(spy_payload):
    from pipeline.market.parse import chain_to_frame

    return chain_to_frame(spy_payload)
