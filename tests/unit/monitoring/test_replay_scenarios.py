"""The replay's scenarios (configs/replay): each composes, fits its period, and puts its change into
the synthetic market on its shock day (no replay is run)."""

from __future__ import annotations

import dataclasses

import pytest
from omegaconf import OmegaConf

from monitoring.replay import change_text, period, replay_config, shock_knobs
from pipeline.config import CONFIG_DIR, SyntheticMarketConfig
from pipeline.errors import ConfigError
from pipeline.market.calendar import shift_trading_days
from tests.conftest import compose_config

SCENARIOS = sorted(p.stem for p in (CONFIG_DIR / "replay").glob("*.yaml"))
# the synthetic market's skew and strike-width knobs (a colleague adds them to the generator)
MARKET_KNOBS = {"shock_skew", "shock_strike_width"} <= {
    f.name for f in dataclasses.fields(SyntheticMarketConfig)
}
needs_market_knobs = pytest.mark.skipif(not MARKET_KNOBS, reason="data_fetch.synthetic has no "
                                        "shock_skew/shock_strike_width yet")  # fmt: skip


def scenario(name: str, *overrides: str):
    return compose_config([f"replay={name}", "paths.root=/tmp/replay-scenarios", *overrides])


def test_the_scenarios_asked_for_are_there():
    assert {"default", "shock_early", "shock_late", "warmup_30", "warmup_60", "variance_x2",
            "variance_x4", "crush", "skew", "strikes_wide"} <= set(SCENARIOS)  # fmt: skip


@pytest.mark.parametrize("name", SCENARIOS)
def test_every_scenario_composes_and_fits_its_period(name):
    rc = scenario(name, "seed=11").replay
    assert rc.name == name  # the summary names it
    days = period(rc)
    assert len(days) == rc.days and days[-1].isoformat() == rc.end_date
    # the skill goal is judged on the 20 days after the change: every scenario has them
    assert rc.shock_day is not None and rc.days - rc.shock_day >= 20
    assert all(v > 0 for v in shock_knobs(rc).values())


def test_scenarios_change_only_what_they_are_about():
    base = OmegaConf.to_container(scenario("variance_x4").replay)
    expected = {
        "shock_early": {"days": 35, "shock_day": 15},
        "shock_late": {"days": 65, "shock_day": 45},
        "warmup_30": {"warmup_days": 30},
        "warmup_60": {},
        "variance_x2": {"shock_size": 2.0},
        "crush": {"shock_size": 0.4},
        "skew": {"shock_size": 1.0, "shock_skew": 1.6},
        "strikes_wide": {"shock_size": 1.0, "shock_strike_width": 2.0},
    }
    assert base["days"] == 40 and base["shock_day"] == 20 and base["shock_size"] == 4.0
    for name, changes in expected.items():
        rc = OmegaConf.to_container(scenario(name).replay)
        differ = {k: v for k, v in rc.items() if base[k] != v and k != "name"}
        assert differ == changes, name
    default = scenario("default").replay  # the default stays as it was
    assert (default.days, default.shock_day, default.shock_size, default.warmup_days) == (60, 40,
                                                                                           4.0, 60)  # fmt: skip


def test_command_line_overrides_apply_on_top_of_a_scenario():
    cfg = scenario("shock_early", "replay.days=25", "seed=7")
    assert (cfg.replay.days, cfg.replay.shock_day, cfg.seed) == (25, 15, 7)
    assert cfg.data_fetch.synthetic.seed == 7 and cfg.model_train.seed == 7


def test_replay_config_puts_the_change_on_the_shock_day():
    cfg = scenario("crush")
    days = period(cfg.replay)
    out = replay_config(cfg, days)
    synthetic = out.data_fetch.synthetic
    assert list(synthetic.shock_dates) == [str(days[19])] and synthetic.shock_size == 0.4
    assert out.main.end_date == str(shift_trading_days(days[0], -1))  # warm-up before day 1
    assert out.main.days == 60 and out.paths.root == out.replay.root


@needs_market_knobs
@pytest.mark.parametrize(("name", "key", "value"), [("skew", "shock_skew", 1.6),
                                                    ("strikes_wide", "shock_strike_width", 2.0)])  # fmt: skip
def test_replay_config_passes_the_skew_and_strike_width_to_the_market(name, key, value):
    cfg = scenario(name)
    days = period(cfg.replay)
    synthetic = replay_config(cfg, days).data_fetch.synthetic
    assert list(synthetic.shock_dates) == [str(days[19])]
    assert synthetic[key] == value and synthetic.shock_size == 1.0


def test_a_change_the_market_cannot_make_is_an_error_not_a_silent_no_op():
    cfg = scenario("skew")
    days = period(cfg.replay)
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True))
    cfg.data_fetch.synthetic.pop("shock_skew", None)  # a market without the knob
    with pytest.raises(ConfigError, match="no data_fetch.synthetic.shock_skew"):
        replay_config(cfg, days)
    cfg.replay.shock_skew = 1.0  # no change asked for: nothing to pass
    assert "shock_skew" not in replay_config(cfg, days).data_fetch.synthetic


@pytest.mark.parametrize("bad", ["replay.shock_skew=0", "replay.shock_size=-1",
                                 "replay.shock_strike_width=0"])  # fmt: skip
def test_knobs_must_be_positive(bad):
    with pytest.raises(ConfigError, match="must be positive"):
        period(scenario("default", bad).replay)


def test_the_change_is_described_in_words():
    p = {"shock_day": 20, "shock_date": "2026-11-02", "shock_size": 0.4, "shock_skew": 1.6,
         "shock_strike_width": 2.0}  # fmt: skip
    assert change_text(p) == ("variance ×0.4 (a vol crush), skew ×1.6 as steep, strikes listed "
                              "×2 as wide on day 20 (2026-11-02)")  # fmt: skip
    assert change_text({"shock_day": 40, "shock_date": "d", "shock_size": 4.0}) == (
        "variance ×4 on day 40 (d)"
    )
    assert change_text({"shock_day": None}) == "no shock"
