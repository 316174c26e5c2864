"""The synthetic market's second family (`sabr_jumps`) and the regime-change knobs of both.

sabr_jumps: Merton jumps on stochastic-vol spot paths, Hagan SABR smiles per expiry with
sticky-strike dynamics, single-stock quote rules (dollar grids, missing strikes, noisier mids,
wider ITM spreads, stale deep-ITM quotes). Knobs: shock_size < 1 (vol crush), shock_skew,
shock_strike_width, acting from the shock date on.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import math

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from pipeline.config import CONFIG_DIR, MarketConfig, SyntheticMarketConfig, UnderlyingSpec
from pipeline.market import synthetic_path
from pipeline.market.calendar import shift_trading_days
from pipeline.market.parse import chain_to_frame
from pipeline.market.synthetic import (
    FAMILIES,
    TRUTH_COLUMNS,
    day_market,
    generate_chain,
    generate_day,
    spot_path,
)
from pipeline.market.synthetic_jump_quotes import (
    ATM_KEEP,
    MISSING_STRIKE_SHARE,
    STALE_ITM_SHARE,
    build_jump_chain,
    grid_key,
    itm_depth,
)
from pipeline.market.synthetic_path import RHO_MAX, SmileState, steepen_ssvi
from pipeline.market.synthetic_quotes import build_chain
from pipeline.market.synthetic_sabr import SabrSmileState, hagan_vol
from pipeline.quant.black_scholes import black_price
from pipeline.quant.implied_vol import implied_vol
from tests.conftest import compose_config

DAY = dt.date(2024, 6, 11)
SHOCK = dt.date(2024, 9, 16)
MARKET = OmegaConf.load(CONFIG_DIR / "market" / "default.yaml")
JUMPS = ("ACME", "BOLT", "CRNX", "DYNA")
# sha256 of json.dumps(generate_day(...)[0]) with seed 7, computed before the second family and
# the regime knobs existed: the default family's output must not change by one byte
DEFAULT_DIGESTS = {
    "calm": "c52ddfdd79e45f4f930d9736ed856f83f9d806b39990570721b360d95824cac0",
    "shock": "32fa08bda7a1d5b8d55f5394bea3f807291b97ed9ab7e0f7b47ec0187ce41431",
}


@pytest.fixture(scope="module")
def jumps_node():
    """data_fetch=synthetic_jumps as Hydra composes it (synthetic.yaml + synthetic_jumps.yaml)."""
    return compose_config(["data_fetch=synthetic_jumps"]).data_fetch.synthetic


def ssvi_cfg(**overrides):
    """configs/data_fetch/synthetic.yaml's market with seed 7 and overrides."""
    cfg = OmegaConf.load(CONFIG_DIR / "data_fetch" / "synthetic.yaml").synthetic
    cfg.seed = 7
    for key, value in overrides.items():
        cfg[key] = value
    return cfg


def jumps_cfg(node, **overrides):
    cfg = OmegaConf.create(OmegaConf.to_container(node))
    cfg.seed = 7
    for key, value in overrides.items():
        cfg[key] = value
    return cfg


def dumps(payload) -> str:
    return json.dumps(payload, allow_nan=False)


def digest(payload) -> str:
    return hashlib.sha256(dumps(payload).encode()).hexdigest()


def hagan_reference(f, k, t, alpha, beta, rho, nu) -> float:
    """Hagan et al. (2002) eq. 2.17a written out for one option (the ATM limit z/x(z) → 1)."""
    fk = f * k
    log_fk = math.log(f / k)
    omb = 1.0 - beta
    z = nu / alpha * fk ** (omb / 2) * log_fk
    if abs(z) < 1e-12:
        z_over_x = 1.0
    else:
        x = math.log((math.sqrt(1 - 2 * rho * z + z * z) + z - rho) / (1 - rho))
        z_over_x = z / x
    front = alpha / (fk ** (omb / 2) * (1 + omb**2 / 24 * log_fk**2 + omb**4 / 1920 * log_fk**4))
    tail = 1 + t * (
        omb**2 / 24 * alpha**2 / fk**omb
        + rho * beta * nu * alpha / (4 * fk ** (omb / 2))
        + (2 - 3 * rho**2) / 24 * nu**2
    )
    return front * z_over_x * tail


def frame(payload: dict, truth: pd.DataFrame) -> pd.DataFrame:
    """Parsed payload side by side with its truth, plus the quoted mid and its implied vol."""
    raw = chain_to_frame(payload)
    df = pd.concat([raw, truth[["t", "forward", "discount", "true_iv", "true_price", "is_bad"]]],
                   axis=1)  # fmt: skip
    df["mid"] = (df["bid"] + df["ask"]) / 2
    call = df["option_type"] == "C"
    df["mid_iv"] = implied_vol(
        df["mid"], df["forward"], df["strike"], df["t"], df["discount"], call
    ).iv
    sd = df["true_iv"] * np.sqrt(df["t"].where(df["t"] > 0))  # NaN for expired rows
    k = np.log(df["strike"] / df["forward"])
    df["itm_sd"] = np.where(call, -k, k) / sd
    return df


def atm_skew_30d(smile, forward_30d: float) -> float:
    """∂σ/∂ln K at the 30-day forward (central difference)."""
    t, h = 30 / 365, 1e-4
    up, down = (smile.strike_vol(forward_30d * math.exp(s), forward_30d, t) for s in (h, -h))
    return float((up - down) / (2 * h))


def reference_forward(smile, m) -> float:
    """Where a smile's ATM sits at 30 days: the anchor forward (SABR), today's forward (SSVI)."""
    t = 30 / 365
    if isinstance(smile, SabrSmileState):
        return float(smile.anchor_forward(t))
    return m.spot * math.exp((m.rate - m.dividend_yield) * t)


# --- the family is a config choice -------------------------------------------------------------


def test_family_is_selected_by_config(jumps_node):
    assert FAMILIES == ("ssvi", "sabr_jumps")
    assert compose_config([]).data_fetch.synthetic.family == "ssvi"
    assert jumps_node.family == "sabr_jumps"
    assert [u.symbol for u in jumps_node.underlyings] == list(JUMPS)
    assert {u.kind for u in jumps_node.underlyings} == {"stock"}
    assert jumps_node.jump_intensity > 0 and jumps_node.jump_mean < 0
    assert isinstance(day_market("SPY", DAY, ssvi_cfg(), MARKET).smile, SmileState)
    assert isinstance(day_market("ACME", DAY, jumps_cfg(jumps_node), MARKET).smile, SabrSmileState)
    # the family key alone switches the default underlyings to the other model
    switched = day_market("SPY", DAY, ssvi_cfg(family="sabr_jumps"), MARKET)
    assert isinstance(switched.smile, SabrSmileState)
    payloads, truth = generate_day(DAY, jumps_cfg(jumps_node), MARKET)
    assert list(payloads) == list(JUMPS) and set(truth["symbol"]) == set(JUMPS)


def test_unknown_family_is_a_value_error_naming_the_allowed_ones():
    with pytest.raises(ValueError, match=r"'heston'.*ssvi, sabr_jumps"):
        generate_chain("SPY", DAY, ssvi_cfg(family="heston"), MARKET)
    with pytest.raises(ValueError, match="sabr_jumps"):
        spot_path("SPY", ssvi_cfg(family="heston"), DAY)


def test_dataclass_config_gives_the_same_payload_as_omegaconf(jumps_node):
    node = jumps_cfg(jumps_node)
    cfg = SyntheticMarketConfig(**{
        **OmegaConf.to_container(node),
        "underlyings": [UnderlyingSpec(**u) for u in OmegaConf.to_container(node.underlyings)],
    })  # fmt: skip
    market = MarketConfig(**OmegaConf.to_container(MARKET))
    assert dumps(generate_chain("BOLT", DAY, cfg, market)[0]) == dumps(
        generate_chain("BOLT", DAY, node, MARKET)[0]
    )


def test_configs_without_the_new_keys_still_generate_the_default_family():
    old = ssvi_cfg()
    for key in ("family", "shock_skew", "shock_strike_width", "jump_intensity", "jump_mean",
                "jump_std", "sabr_beta", "sabr_rho", "sabr_vol_of_vol"):  # fmt: skip
        del old[key]
    assert dumps(generate_chain("SPY", DAY, old, MARKET)[0]) == dumps(
        generate_chain("SPY", DAY, ssvi_cfg(), MARKET)[0]
    )


# --- determinism and shape ---------------------------------------------------------------------


def test_same_seed_symbol_and_date_give_the_same_bytes_whatever_ran_before(jumps_node):
    cfg = jumps_cfg(jumps_node, seed=101)
    synthetic_path.clear_path_cache()
    first, truth = generate_chain("CRNX", DAY, cfg, MARKET)
    synthetic_path.clear_path_cache()
    generate_day(shift_trading_days(DAY, 30), cfg, MARKET, symbols=["DYNA", "ACME"])
    later, later_truth = generate_chain("CRNX", DAY, cfg, MARKET)
    synthetic_path.clear_path_cache()
    generate_chain("CRNX", shift_trading_days(DAY, -7), cfg, MARKET)
    stepwise, _ = generate_chain("CRNX", DAY, cfg, MARKET)
    assert dumps(first) == dumps(later) == dumps(stepwise)
    pd.testing.assert_frame_equal(truth, later_truth)
    assert dumps(generate_day(DAY, cfg, MARKET, symbols=["BOLT", "CRNX"])[0]["CRNX"]) == dumps(
        first
    )
    other, _ = generate_chain("CRNX", DAY, jumps_cfg(jumps_node, seed=102), MARKET)
    assert dumps(other) != dumps(first)


def _type_signature(payload: dict) -> tuple:
    data = payload["data"]
    top = {k: type(v).__name__ for k, v in data.items() if k != "options"}
    options = {}
    for option in data["options"]:
        for k, v in option.items():
            if v is not None:
                options.setdefault(k, set()).add(type(v).__name__)
    return sorted(payload), top, {k: sorted(v) for k, v in options.items()}


def test_payload_is_exactly_cboe_shaped_and_truth_has_the_same_columns(jumps_node):
    cboe = json.loads((CONFIG_DIR.parent / "tests/fixtures/cboe/spy_chain.json").read_text())
    payloads, truth = generate_day(DAY, jumps_cfg(jumps_node), MARKET)
    reference, reference_truth = generate_chain("SPY", DAY, ssvi_cfg(), MARKET)
    assert list(truth.columns) == list(TRUTH_COLUMNS) == list(reference_truth.columns)
    # strike is int64 in the default family's truth when every increment is a whole number
    dtypes = {k: v for k, v in truth.dtypes.items() if k != "strike"}
    assert dtypes == {k: v for k, v in reference_truth.dtypes.items() if k != "strike"}
    assert truth["strike"].dtype.kind == "f"
    for symbol, payload in payloads.items():
        dumps(payload)  # JSON with null, never NaN
        assert set(payload) == set(cboe) and payload["symbol"] == symbol
        assert payload["timestamp"] == "2024-06-11 16:15:00"
        data = payload["data"]
        assert set(data) == set(cboe["data"])
        assert {frozenset(o) for o in data["options"]} == {frozenset(cboe["data"]["options"][0])}
        assert _type_signature(payload) == _type_signature(reference)
        assert data["security_type"] == "stock" and data["symbol"] == symbol
        assert 10.0 < data["iv30"] < 120.0  # percent, as Cboe prints it
        parsed = chain_to_frame(payload)
        part = truth[truth["symbol"] == symbol].reset_index(drop=True)
        assert parsed["option"].tolist() == part["option"].tolist()
        assert (parsed["strike"] == part["strike"]).all()
    assert 4_000 < len(truth) < 12_000


# --- the SABR smile, sticky strike ---------------------------------------------------------------


def test_true_ivs_are_hagan_sabr_at_the_anchor_forward(jumps_node):
    cfg = jumps_cfg(jumps_node)
    for symbol in ("ACME", "BOLT"):
        _, truth = generate_chain(symbol, DAY, cfg, MARKET)
        smile = day_market(symbol, DAY, cfg, MARKET).smile
        good = truth[~truth["is_bad"]]
        sample = good.iloc[::7]
        expected = []
        for row in sample.itertuples():
            alpha, beta, rho, nu = (float(p) for p in smile.params(row.t))
            fwd = float(smile.anchor_forward(row.t))
            expected.append(hagan_reference(fwd, row.strike, row.t, alpha, beta, rho, nu))
        np.testing.assert_allclose(sample["true_iv"], expected, rtol=1e-10)
        t = np.sort(good["t"].unique())
        alpha, beta, rho, nu = smile.params(t)
        assert (beta == cfg.sabr_beta).all()
        # α is set so the anchor-forward vol is the ATM level of the term structure
        atm = hagan_vol(smile.anchor_forward(t), smile.anchor_forward(t), t, alpha, beta, rho, nu)
        np.testing.assert_allclose(atm, smile.atm_vol(t), rtol=1e-10)
        # ν ∝ 1/√T beyond a week; ρ steepened by jump risk at short maturities only
        long = t > 1.0
        np.testing.assert_allclose(rho[long], cfg.sabr_rho, atol=0.01)
        assert 0.05 < smile.jump_share < 0.6
        short = t < 0.05
        assert (rho[short] < cfg.sabr_rho - 0.8 * smile.jump_share).all()
        assert (np.diff(rho) > 0).all()  # the jump steepening fades with maturity
        assert nu[0] > 3 * nu[-1]
        # truth reproduces from the payload's spot and the market config
        price = black_price(good["forward"], good["strike"], good["t"], good["discount"],
                            good["true_iv"], good["option_type"] == "C")  # fmt: skip
        np.testing.assert_allclose(price, good["true_price"], rtol=1e-9, atol=1e-9)


def test_hagan_vol_matches_the_reference_formula_off_the_chain():
    rng = np.random.default_rng(0)
    for _ in range(200):
        f, t = rng.uniform(20, 800), rng.uniform(0.01, 2.0)
        k = f * math.exp(rng.uniform(-0.8, 0.5))
        alpha, beta, rho, nu = rng.uniform(0.05, 3), rng.uniform(0, 1), rng.uniform(-0.9, 0.5), rng.uniform(0.1, 3)  # fmt: skip
        got = float(hagan_vol(f, k, t, alpha, beta, rho, nu))
        assert got == pytest.approx(hagan_reference(f, k, t, alpha, beta, rho, nu), rel=1e-10)
    assert float(hagan_vol(100.0, 100.0, 0.5, 2.0, 0.7, -0.3, 1.0)) == pytest.approx(
        hagan_reference(100.0, 100.0, 0.5, 2.0, 0.7, -0.3, 1.0), rel=1e-12
    )


def _chain_frame(c: dict) -> pd.DataFrame:
    return pd.DataFrame({k: c[k] for k in ("expiry", "strike", "is_call", "true_iv")})


def test_sticky_strike_a_spot_move_leaves_the_vol_at_a_strike_unchanged(jumps_node):
    m = day_market("ACME", DAY, jumps_cfg(jumps_node), MARKET)
    moved = dataclasses.replace(m, spot=round(m.spot * 1.04, 2))
    key = grid_key(7, "ACME")
    before = _chain_frame(build_jump_chain(m, (), np.random.default_rng(1), key))
    after = _chain_frame(build_jump_chain(moved, (), np.random.default_rng(1), key))
    both = before.merge(after, on=["expiry", "strike", "is_call"], suffixes=("", "_moved"))
    assert len(both) > 300
    np.testing.assert_allclose(both["true_iv_moved"], both["true_iv"], rtol=1e-12)
    t, strikes = 0.25, m.spot * np.exp(np.linspace(-0.3, 0.2, 11))
    np.testing.assert_array_equal(m.smile.strike_vol(strikes, 100.0, t),
                                  m.smile.strike_vol(strikes, 120.0, t))  # fmt: skip
    # the default family is sticky-moneyness: the same move changes the vol at a strike
    s = day_market("SPY", DAY, ssvi_cfg(), MARKET)
    s_moved = dataclasses.replace(s, spot=round(s.spot * 1.04, 2))
    a = _chain_frame(build_chain(s, np.random.default_rng(1)))
    b = _chain_frame(build_chain(s_moved, np.random.default_rng(1)))
    ssvi_both = a.merge(b, on=["expiry", "strike", "is_call"], suffixes=("", "_moved"))
    assert (ssvi_both["true_iv_moved"] - ssvi_both["true_iv"]).abs().max() > 0.01


def test_the_smile_re_centres_slowly_on_the_spot(jumps_node):
    cfg = jumps_cfg(jumps_node)
    end = shift_trading_days(DAY, 60)
    path = spot_path("ACME", cfg, end)
    anchors = []
    for day in path["date"].iloc[-40:]:
        anchors.append(day_market("ACME", day.date(), cfg, MARKET).smile.anchor)
    log_spot = np.log(path["spot"].iloc[-40:].to_numpy())
    # the anchor follows the spot, with a fraction of each day's move
    moves, anchor_moves = np.diff(log_spot), np.diff(np.log(anchors))
    share = np.dot(anchor_moves, moves) / np.dot(moves, moves)
    assert 0.05 < share < 0.3


def test_sabr_slices_are_free_of_butterfly_arbitrage_on_the_listed_strikes(jumps_node):
    _, truth = generate_day(DAY, jumps_cfg(jumps_node), MARKET)
    good = truth[~truth["is_bad"] & (truth["option_type"] == "C")]
    for _, s in good.groupby(["symbol", "expiry"]):
        s = s.sort_values("strike")
        k, c = s["strike"].to_numpy(), s["true_price"].to_numpy()
        slope = np.diff(c) / np.diff(k)
        assert (slope <= 1e-12).all() and (slope >= -s["discount"].iloc[0] - 1e-12).all()
        assert (np.diff(slope) >= -1e-10).all()


# --- jumps ------------------------------------------------------------------------------------


def test_jumps_occur_at_the_configured_intensity_over_a_long_path(jumps_node):
    cfg = jumps_cfg(jumps_node, jump_intensity=8.0, jump_mean=-0.06, jump_std=0.04)
    end = shift_trading_days(cfg.origin, 1500)
    counts, sizes, jump_moves, other_moves = [], [], [], []
    for symbol in JUMPS:
        path = spot_path(symbol, cfg, end)
        returns = np.diff(np.log(path["spot"].to_numpy()))
        jumped = path["jump"].to_numpy()[1:] != 0.0
        counts.append(jumped.sum())
        sizes.extend(path["jump"].to_numpy()[1:][jumped])
        jump_moves.extend(np.abs(returns[jumped]))
        other_moves.extend(np.abs(returns[~jumped]))
    expected = len(JUMPS) * 1500 * -math.expm1(-8.0 / 252)  # days with at least one jump
    assert 0.75 * expected < sum(counts) < 1.25 * expected, (counts, expected)
    assert np.mean(sizes) == pytest.approx(-0.06, abs=0.012)  # negative mean jump
    assert np.median(jump_moves) > 2 * np.median(other_moves)
    # the default family's paths have none
    calm = spot_path("SPY", ssvi_cfg(), end)
    assert (calm["jump"] == 0.0).all()


# --- quote rules ---------------------------------------------------------------------------------


def test_dollar_grids_uneven_wings_and_persistently_missing_strikes(jumps_node):
    cfg = jumps_cfg(jumps_node)
    _, truth = generate_chain("ACME", DAY, cfg, MARKET)
    _, next_truth = generate_chain("ACME", shift_trading_days(DAY, 1), cfg, MARKET)
    good = truth[~truth["is_bad"] & (truth["option_type"] == "P")]
    nxt = next_truth[~next_truth["is_bad"] & (next_truth["option_type"] == "P")]
    gaps = missing = 0
    reach = []
    for expiry, s in good.groupby("expiry"):
        strikes = np.sort(s["strike"].unique())
        steps = np.unique(np.round(np.diff(strikes), 6))
        assert all(np.isclose(step / 0.5, round(step / 0.5)) for step in steps)  # dollar grid
        gaps += len(steps) > 1  # spacing changes across the zones (and at missing strikes)
        k = np.log(strikes / s["forward"].iloc[0])
        reach.append(-k.min() / k.max())  # the put wing reaches further than the call wing
        # a strike missing today (inside the range listed both days, away from either day's
        # nearest-the-money strikes) is missing tomorrow
        n = nxt[nxt["expiry"] == expiry]["strike"].unique()
        if len(n):
            lo, hi = max(strikes.min(), n.min()), min(strikes.max(), n.max())
            inc = steps.min()
            grid = np.round(np.arange(math.ceil(lo / inc), math.floor(hi / inc) + 1) * inc, 3)
            inner = grid[np.abs(np.log(grid / s["forward"].iloc[0])) < 0.02]
            for forward in (s["forward"].iloc[0], nxt[nxt["expiry"] == expiry]["forward"].iloc[0]):
                near = grid[np.argsort(np.abs(grid - forward))[:ATM_KEEP]]  # always listed
                inner = np.setdiff1d(inner, near)
            absent_today = set(inner) - set(np.round(strikes, 3))
            absent_next = set(inner) - set(np.round(n, 3))
            missing += len(absent_today)
            assert absent_today == absent_next
    assert gaps >= 0.8 * good["expiry"].nunique()
    assert min(reach) > 1.1 and np.median(reach) > 1.4
    assert missing > 0
    assert 0 < MISSING_STRIKE_SHARE < 0.1


def test_stale_itm_quotes_exist_and_bias_mid_ivs_up(jumps_node):
    cfg = jumps_cfg(jumps_node)
    m = day_market("ACME", DAY, cfg, MARKET)
    closes = spot_path("ACME", cfg, DAY)["spot"].to_numpy()
    stale_spots = tuple(round(s, 2) for s in closes[-2:-7:-1])
    c = build_jump_chain(m, stale_spots, np.random.default_rng(3), grid_key(7, "ACME"))
    deep = itm_depth(c) > 1.0
    stale = c["stale_itm"]
    assert not stale[~deep].any()
    assert stale[deep].mean() == pytest.approx(STALE_ITM_SHARE, abs=0.08)
    mid = (c["bid"] + c["ask"]) / 2
    iv = implied_vol(mid, c["forward"], c["strike"], c["t"], c["discount"], c["is_call"]).iv
    error = iv - c["true_iv"]
    assert (c["ask"][stale] >= c["intrinsic"][stale] - 1e-9).all()  # nobody offers below intrinsic
    assert np.isnan(iv[stale]).mean() > 0.03  # stale mids below intrinsic: no implied vol
    solved_stale = stale & ~np.isnan(iv)
    fresh_deep = deep & ~stale & ~np.isnan(iv)
    assert np.median(error[solved_stale]) > 0.005 and np.mean(error[solved_stale]) > 0.01
    assert abs(np.median(error[fresh_deep])) < 0.003
    # what a consumer of the payload sees: deep ITM mid IVs skew high, OTM ones do not
    df = frame(*generate_chain("ACME", DAY, cfg, MARKET))
    good = df[~df["is_bad"] & (df["bid"] > 0)]
    bias = good["mid_iv"] - good["true_iv"]
    assert bias[good["itm_sd"] > 1.5].median() > 0.002
    assert abs(bias[good["itm_sd"] < -0.5].median()) < 0.001
    assert good.loc[good["itm_sd"] > 1.0, "mid_iv"].isna().mean() > 0.03


def test_noisier_mids_and_wider_itm_spreads_than_the_default_rules(jumps_node):
    m = day_market("ACME", DAY, jumps_cfg(jumps_node), MARKET)
    jump = build_jump_chain(m, (), np.random.default_rng(5), grid_key(7, "ACME"))
    default = build_chain(m, np.random.default_rng(5))  # the default family's rules, same smile
    cols = ("expiry", "strike", "is_call", "half_spread", "true_price", "bid", "ask", "z")
    a = pd.DataFrame({k: jump[k] for k in cols}).astype({"strike": float})
    b = pd.DataFrame({k: default[k] for k in cols}).astype({"strike": float})
    both = a.merge(b, on=["expiry", "strike", "is_call"], suffixes=("", "_default"))
    depth = np.where(both["is_call"], -both["z"], both["z"])
    ratio = both["half_spread"] / both["half_spread_default"]
    assert ratio[depth > 1.5].median() > 1.5 * ratio[depth < -0.5].median()
    assert ratio[depth < -0.5].median() == pytest.approx(1.0, abs=0.05)

    def noise(x, suffix=""):
        mid = (x["bid" + suffix] + x["ask" + suffix]) / 2
        return ((mid - x["true_price" + suffix]) / x["half_spread" + suffix]).abs()

    quoted = (both["bid"] > 0) & (both["bid_default"] > 0) & (depth < 0)
    assert noise(both[quoted]).mean() > 1.5 * noise(both[quoted], "_default").mean()


# --- the default family is unchanged -------------------------------------------------------------


def test_default_family_output_is_byte_for_byte_what_it_was():
    calm, _ = generate_day(DAY, ssvi_cfg(), MARKET)
    assert digest(calm) == DEFAULT_DIGESTS["calm"]
    shock_cfg = ssvi_cfg(shock_dates=[SHOCK.isoformat()], vol_of_vol=0.3, bad_row_rate=0.2)
    shocked, _ = generate_day(SHOCK, shock_cfg, MARKET)
    assert digest(shocked) == DEFAULT_DIGESTS["shock"]


# --- regime knobs, both families -----------------------------------------------------------------


@pytest.fixture(scope="module", params=["ssvi", "sabr_jumps"])
def family_case(request, jumps_node):
    """(make_cfg, symbol) for each family; make_cfg(**overrides) has a shock on SHOCK."""
    if request.param == "ssvi":
        return (lambda **o: ssvi_cfg(shock_dates=[SHOCK.isoformat()], **o)), "SPY"
    return (lambda **o: jumps_cfg(jumps_node, shock_dates=[SHOCK.isoformat()], **o)), "ACME"


def test_shock_size_below_one_is_a_vol_crush_with_a_gap_up(family_case):
    make, symbol = family_case
    cfg = make(shock_size=0.25)
    payload, _ = generate_chain(symbol, SHOCK, cfg, MARKET)
    assert payload["data"]["price_change_percent"] > 1.0  # relief rally
    assert payload["data"]["iv30_change"] < -2.0  # vol points
    path = spot_path(symbol, cfg, shift_trading_days(SHOCK, 40)).set_index("date")
    before, on = (
        path.loc[pd.Timestamp(shift_trading_days(SHOCK, -1))],
        path.loc[pd.Timestamp(SHOCK)],
    )
    assert on["variance"] < 0.4 * before["variance"] and on["iv30"] < before["iv30"]
    assert path["variance"].iloc[-1] > on["variance"]  # mean-reverts back up
    spike, _ = generate_chain(symbol, SHOCK, make(shock_size=4.0), MARKET)
    assert spike["data"]["price_change_percent"] < -1.0 and spike["data"]["iv30_change"] > 2.0


def test_shock_skew_steepens_the_smile_from_the_shock_date_on(family_case):
    make, symbol = family_case
    base, steep = make(shock_size=1.0), make(shock_size=1.0, shock_skew=1.5)
    before = shift_trading_days(SHOCK, -1)
    assert dumps(generate_chain(symbol, before, steep, MARKET)[0]) == dumps(
        generate_chain(symbol, before, base, MARKET)[0]
    )
    for day in (SHOCK, shift_trading_days(SHOCK, 1), shift_trading_days(SHOCK, 30)):
        m, m_steep = day_market(symbol, day, base, MARKET), day_market(symbol, day, steep, MARKET)
        f = reference_forward(m.smile, m)
        ratio = atm_skew_30d(m_steep.smile, f) / atm_skew_30d(m.smile, f)
        assert ratio == pytest.approx(1.5, rel=0.03), (day, ratio)
        assert m_steep.smile.atm_vol(30 / 365) == pytest.approx(m.smile.atm_vol(30 / 365))
    flat = day_market(symbol, SHOCK, make(shock_size=1.0, shock_skew=0.5), MARKET)
    m = day_market(symbol, SHOCK, base, MARKET)
    f = reference_forward(m.smile, m)
    assert abs(atm_skew_30d(flat.smile, f)) < abs(atm_skew_30d(m.smile, f))


def test_ssvi_steepening_respects_the_no_arbitrage_bound():
    for rho, eta, gamma in synthetic_path.SSVI_SHAPE.values():
        assert steepen_ssvi(rho, eta, gamma, 1.0, 0.002) == (rho, eta, gamma)
        for factor in (0.3, 1.1, 1.2, 1.5, 3.0, 10.0):
            r, e, g = steepen_ssvi(rho, eta, gamma, factor, 0.002)
            assert e * (1 + abs(r)) <= 2.0 + 1e-12 and abs(r) <= RHO_MAX and gamma <= g <= 0.5
            assert r < 0  # the skew keeps its sign
        r, e, g = steepen_ssvi(rho, eta, gamma, 1.2, 0.002)
        assert r * e == pytest.approx(1.2 * rho * eta) and g == gamma  # within the bound: exact


def test_shock_strike_width_lists_wider_strikes_from_the_shock_date_on(family_case):
    make, symbol = family_case
    base, wide = make(shock_size=1.0), make(shock_size=1.0, shock_strike_width=1.5)
    before = shift_trading_days(SHOCK, -1)
    assert dumps(generate_chain(symbol, before, wide, MARKET)[0]) == dumps(
        generate_chain(symbol, before, base, MARKET)[0]
    )
    for day in (SHOCK, shift_trading_days(SHOCK, 30)):
        assert day_market(symbol, day, wide, MARKET).strike_std_devs == pytest.approx(
            1.5 * day_market(symbol, day, base, MARKET).strike_std_devs
        )
        reach = []
        for cfg in (base, wide):
            _, truth = generate_chain(symbol, day, cfg, MARKET)
            puts = truth[~truth["is_bad"] & (truth["option_type"] == "P")]
            k = np.log(puts["strike"] / puts["forward"])
            reach.append(k.groupby(puts["expiry"]).min())
        ratio = (reach[1] / reach[0]).dropna()
        assert ratio.median() == pytest.approx(1.5, abs=0.15), (day, ratio.describe())
