"""The replay's market server on 127.0.0.1: seeded transient faults, then the synthetic payload
that data_fetch parses; the Cboe client's retries get every day."""

from __future__ import annotations

import datetime as dt

import pytest
import requests

from monitoring.market_server import FAULT_KINDS, MarketServer
from pipeline.config import RetryPolicy
from pipeline.market.cboe import CboeClient
from pipeline.market.parse import chain_to_frame
from tests.conftest import TINY_MARKET, compose_config

DAY = dt.date(2026, 3, 2)


@pytest.fixture(scope="module")
def cfg():
    return compose_config(TINY_MARKET)


def test_fault_plan_is_seeded_transient_and_respects_the_rate(cfg):
    server = MarketServer(cfg.data_fetch.synthetic, cfg.market, fault_rate=0.3, seed=7)
    plans = {(d, s): server.faults_for(d, s) for d in (DAY, DAY + dt.timedelta(days=1))
             for s in ("SPY", "_SPX", "QQQ", "IWM", "DIA")}  # fmt: skip
    assert plans == {k: server.faults_for(*k) for k in plans}  # same seed, same plan
    assert all(len(p) <= 2 and set(p) <= set(FAULT_KINDS) for p in plans.values())
    never = MarketServer(cfg.data_fetch.synthetic, cfg.market, fault_rate=0.0, seed=7)
    always = MarketServer(cfg.data_fetch.synthetic, cfg.market, fault_rate=1.0, seed=7)
    assert never.faults_for(DAY, "SPY") == [] and 1 <= len(always.faults_for(DAY, "SPY")) <= 2
    with pytest.raises(ValueError, match="fault_rate"):
        MarketServer(cfg.data_fetch.synthetic, cfg.market, fault_rate=1.5, seed=7)


def test_faults_then_the_day_and_the_client_retries_through(cfg):
    with MarketServer(cfg.data_fetch.synthetic, cfg.market, fault_rate=1.0, seed=7) as server:
        server.date = DAY
        # a plain GET meets the planned faults in order (the HTTP ones shown as such)
        for fault in server.faults_for(DAY, "SPY"):
            try:
                answer = requests.get(f"{server.base_url}/SPY.json", timeout=10)
            except requests.RequestException:  # the body cut short
                assert fault == "connection_dropped"
                continue
            if fault in ("503", "429"):
                assert answer.status_code == int(fault)
            if fault == "429":
                assert answer.headers["Retry-After"] == "0"
        # the Cboe client retries through another symbol's faults and parses the day
        policy = RetryPolicy(max_retries=3, backoff="exponential", max_delay=0.01,
                             base_delay=0.01, jitter=False)  # fmt: skip
        client = CboeClient(server.base_url, timeout_s=5.0, policy=policy, user_agent="test")
        result = client.fetch_chain("_SPX")
        frame = chain_to_frame(result.payload)
        assert len(frame) > 100 and set(frame["underlying"]) == {"_SPX"}
        assert result.attempts == len(server.faults_for(DAY, "_SPX")) + 1
        stats = server.stats.to_json()
    spx, spy = server.faults_for(DAY, "_SPX"), server.faults_for(DAY, "SPY")
    assert stats["faults_injected"] == len(spx) + len(spy)
    assert stats["served"] == 1 and stats["symbol_days_recovered"] == 1
    assert stats["symbol_days_faulted"] == 2
