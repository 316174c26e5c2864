"""model_deploy's decisions and health checks, against an injected fake service (no HTTP)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.deploy_checks import health_check
from pipeline.model_deploy import decide

GOLDEN = pd.DataFrame({"underlying": ["SPY", "SPY"], "option_type": ["C", "P"],
                       "strike": [500.0, 480.0], "expiry": pd.to_datetime(["2026-12-18"] * 2),
                       "quote_date": pd.to_datetime(["2026-11-20"] * 2), "spot": [505.0, 505.0]})  # fmt: skip
EXPECTED = np.array([0.18, 0.21])


class FakeService:
    url = "http://127.0.0.1:1"

    def __init__(self, ready=True, version="3", ivs=EXPECTED, status=200, answered_by=None):
        self._ready, self._version, self._ivs, self._status = ready, version, ivs, status
        self._answered_by = answered_by or version

    def ready(self):
        return self._ready

    def model(self):
        return {"version": self._version}

    def price(self, contracts):
        if self._status != 200:
            return self._status, {"error": "contract 0: unknown underlying 'SPY'"}
        results = [{"iv": iv, "price": 1.0, "model_version": self._answered_by} for iv in self._ivs]
        return 200, {"model_version": self._version, "results": results}


def test_healthy_service_passes_every_check():
    health = health_check(FakeService(), "3", GOLDEN, lambda: EXPECTED, 1e-6)
    assert health.passed
    assert [c.split(":")[0] for c in health.checks] == ["readyz", "version", "golden"]
    assert health.figures["golden_max_abs_iv_diff"] == 0.0


@pytest.mark.parametrize(
    ("service", "words"),
    [
        (FakeService(ready=False), "readyz: not ready"),
        (FakeService(version="2"), "answers with v2, expected v3"),
        (FakeService(status=422), "/price answered 422: contract 0: unknown underlying"),
        (FakeService(ivs=EXPECTED + [0, 1e-3]), "max |IV service − offline| 1.00e-03"),
        (FakeService(ivs=[0.18]), "1 answers for 2 contracts"),
        (FakeService(ivs=[0.18, float("nan")]), "inf"),
        (FakeService(answered_by="2"), "priced by v2"),
    ],
)
def test_each_failed_check_says_what_failed(service, words):
    health = health_check(service, "3", GOLDEN, lambda: EXPECTED, 1e-6)
    assert not health.passed
    assert words in health.checks[-1]


@pytest.mark.parametrize(
    ("staging", "verdict", "auto", "status"),
    [
        (None, None, False, "nothing_staged"),
        ("4", None, False, "not_evaluated"),
        ("4", {"verdict": "failed"}, True, "blocked"),
        ("4", {"verdict": "passed"}, False, "awaiting_approval"),
        ("4", {"verdict": "passed"}, True, "promote"),
    ],
)
def test_gate_decision(staging, verdict, auto, status):
    assert decide(staging, verdict, auto)[0] == status


def test_a_version_that_cannot_price_offline_fails_the_check():
    def broken():
        raise ValueError("booster file is corrupt")

    health = health_check(FakeService(), "3", GOLDEN, broken, 1e-6)
    assert not health.passed
    assert health.checks[-1] == "golden: v3 fails offline: ValueError: booster file is corrupt"
