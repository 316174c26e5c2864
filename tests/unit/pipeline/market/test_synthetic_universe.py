"""The universe as a knob: `data_fetch.synthetic.n_underlyings` (null = the configured list)."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest
from omegaconf import OmegaConf

from pipeline.config import CONFIG_DIR
from pipeline.data_fetch import source_symbols
from pipeline.market.parse import chain_to_frame
from pipeline.market.synthetic import generate_chain, generate_day
from pipeline.market.synthetic_universe import symbols, universe

DAY = dt.date(2024, 6, 11)
MARKET = OmegaConf.load(CONFIG_DIR / "market" / "default.yaml")
FETCH = OmegaConf.load(CONFIG_DIR / "data_fetch" / "synthetic.yaml")
CONFIGURED = [u.symbol for u in FETCH.synthetic.underlyings]


def make_cfg(n=None, seed=7):
    cfg = FETCH.synthetic.copy()
    cfg.seed, cfg.n_underlyings = seed, n
    return cfg


def test_null_is_exactly_the_configured_list():
    assert FETCH.synthetic.n_underlyings is None  # the default market does not change
    assert symbols(make_cfg()) == CONFIGURED
    payloads, _ = generate_day(DAY, make_cfg(), MARKET)
    assert list(payloads) == CONFIGURED


def test_n_names_are_the_configured_ones_then_generated_stocks():
    names = universe(make_cfg(64))
    assert len(names) == len({u.symbol for u in names}) == 64
    assert [u.symbol for u in names[:8]] == CONFIGURED
    generated = names[8:]
    assert {u.kind for u in generated} == {"stock"}
    assert all(
        u.symbol.isalpha() and u.symbol.isupper() and 3 <= len(u.symbol) <= 4 for u in generated
    )
    spots = np.array([u.spot for u in generated])
    vols = np.array([u.vol for u in generated])
    # a realistic cross-section: spots over more than an order of magnitude, vols 12%..95%
    assert spots.min() >= 5 and spots.max() <= 1500 and spots.max() / spots.min() > 10
    assert vols.min() >= 0.12 and vols.max() <= 0.95 and 0.2 < np.median(vols) < 0.5
    assert np.std(np.log(vols)) > 0.15


def test_fewer_than_configured_takes_a_prefix():
    assert symbols(make_cfg(3)) == CONFIGURED[:3]
    assert symbols(make_cfg(8)) == CONFIGURED


def test_deterministic_by_seed_and_prefix_stable():
    assert universe(make_cfg(64)) == universe(make_cfg(64))
    assert universe(make_cfg(256))[:64] == universe(make_cfg(64))
    other = universe(make_cfg(64, seed=8))
    assert other[:8] == universe(make_cfg(64))[:8] and other[8:] != universe(make_cfg(64))[8:]


@pytest.mark.parametrize("bad", [0, -3, 10_001, "64", 2.5, True])
def test_a_bad_count_is_one_clear_error(bad):
    with pytest.raises(ValueError, match="n_underlyings"):
        symbols(make_cfg(bad))


def test_a_generated_name_has_a_sound_chain():
    cfg = make_cfg(16)
    name = universe(cfg)[12]
    payload, truth = generate_chain(name.symbol, DAY, cfg, MARKET)
    json.dumps(payload, allow_nan=False)
    assert payload["symbol"] == name.symbol and payload["data"]["security_type"] == "stock"
    raw = chain_to_frame(payload)
    assert len(raw) == len(truth) > 100
    assert set(raw["underlying"]) == {name.symbol}
    # the chain is priced around the name's vol level (iv30 in percent)
    assert 0.3 * name.vol < payload["data"]["iv30"] / 100 < 3 * name.vol
    with pytest.raises(ValueError, match="unknown synthetic underlying"):
        generate_chain(name.symbol, DAY, make_cfg(), MARKET)  # not in the 8-name market


def test_data_fetch_fetches_the_whole_universe():
    fetch = OmegaConf.merge(FETCH, {"synthetic": make_cfg(20)})
    assert source_symbols(fetch) == symbols(fetch.synthetic)
    assert len(source_symbols(fetch)) == 20
