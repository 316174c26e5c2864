"""The options-pricing app (Streamlit; `make app`, then http://127.0.0.1:8501).

Three tabs:
- Pricer: a contract → the model's price and IV from the pricing service, next to Black-Scholes
  with the underlying's 20-day historical vol and, when the contract is listed, the market quote;
  the model version that priced it is shown.
- Smile: for an underlying and expiry of the newest feature table, the market mid IVs, the model's
  (one POST /price for the expiry's strikes) and the historical-vol baseline.
- Registry: versions with stages, aliases, gate verdicts and key holdout metrics; the promotion
  history.

UI only: every figure comes from webapp/app_data.py (the service for prices, MLflow for the
registry, the feature table for the market). When the service or the registry is down, the
sections that need it say so in a sentence (and how to start it); the others keep working.
Settings come from the environment: PRICING_URL, MLFLOW_TRACKING_URI, APP_DATA_ROOT (app_data).
"""

from __future__ import annotations

import sys
from pathlib import Path

# `streamlit run webapp/app.py` puts webapp/ on sys.path, not the repository: add it
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import altair as alt  # noqa: E402
import pandas as pd  # noqa: E402
import streamlit as st  # noqa: E402

from webapp import app_data as data  # noqa: E402

SERIES_COLORS = {"market mid": "#4c78a8", "model": "#e45756", "BS, 20-day hist vol": "#9d9d9d"}


@st.cache_data(ttl=30, show_spinner=False)
def registry_view(tracking_uri: str, model_name: str) -> data.RegistryView:
    """The registry, read at most every 30 s (every widget change re-runs the script)."""
    return data.read_registry(tracking_uri, model_name)


@st.cache_data(max_entries=4, show_spinner=False)
def market_table(path: str, modified: float) -> pd.DataFrame:
    """The feature table, read once per file version (`modified` keys the cache)."""
    return data.read_market(Path(path))


def load_market(cfg: data.AppConfig) -> tuple[pd.DataFrame | None, Path | None]:
    path = data.latest_features(cfg.processed_dir)
    if path is None:
        return None, None
    return market_table(str(path), path.stat().st_mtime), path


def show_error(exc: BaseException, what: str) -> None:
    """One sentence for the user; never a traceback."""
    if isinstance(exc, data.AppError):
        st.error(str(exc))
    else:
        st.error(f"{what} failed: {type(exc).__name__}: {' '.join(str(exc).split())[:300]}")


# -- sidebar ----------------------------------------------------------------------------------
def sidebar(cfg: data.AppConfig, client: data.PricingClient, path: Path | None) -> None:
    """Where the figures come from, and whether each source answers."""
    with st.sidebar:
        st.header("Sources")
        st.markdown("**Pricing service**")
        try:
            info = client.model_info()
            st.success(f"serving {info.get('model_name')} v{info.get('version')} "
                       f"(@{info.get('alias')})")  # fmt: skip
        except data.ServiceError as exc:
            st.error(str(exc))
        st.caption(cfg.pricing_url)
        st.markdown("**Model registry**")
        try:
            st.success(registry_summary(registry_view(cfg.tracking_uri, cfg.model_name)))
        except data.RegistryError:
            st.warning("not readable: see the Registry tab")
        st.caption(data.display_uri(cfg.tracking_uri))
        st.markdown("**Market data**")
        st.caption(path.name if path else f"no feature table in {cfg.processed_dir}")
        st.button(
            "Refresh", help="Re-read the registry and the market data", on_click=st.cache_data.clear
        )  # before the re-run reads them again


def registry_summary(view: data.RegistryView) -> str:
    if view.empty:
        return f"{view.model_name}: nothing registered yet"
    stages = view.versions.groupby("stage")["version"].first()
    held = [f"{stage} v{stages[stage]}" for stage in ("Production", "Staging") if stage in stages]
    return f"{view.model_name}: " + (", ".join(held) or "no version in Production or Staging")


# -- pricer -----------------------------------------------------------------------------------
def pricer(cfg: data.AppConfig, client: data.PricingClient, market: pd.DataFrame | None) -> None:
    names = data.underlyings(market) if market is not None else sorted(cfg.dividend_yields)
    underlying = st.selectbox("Underlying", names, key="pricer_underlying")
    if market is not None:
        start = data.default_contract(market, underlying)
        vol = data.hist_vol(market, underlying)
    else:
        st.info(f"No feature table in {cfg.processed_dir}: enter the spot and a vol yourself "
                "(`make run` builds the market data).")  # fmt: skip
        start, vol = data.blank_contract(underlying, pd.Timestamp.today().date()), None
    contract, vol = contract_form(start, vol)
    show_quote(cfg, client, market, contract, vol)


def contract_form(start: data.Contract, vol: float | None) -> tuple[data.Contract, float]:
    """The form, starting from `start` (keys per underlying: switching resets the fields)."""
    u = start.underlying
    with st.form("pricer_form"):
        left, middle, right = st.columns(3)
        kind = left.radio("Type", ["C", "P"], horizontal=True, key=f"type_{u}",
                          format_func={"C": "Call", "P": "Put"}.get)  # fmt: skip
        strike = left.number_input("Strike", min_value=0.01, value=start.strike, key=f"strike_{u}")
        spot = middle.number_input("Spot", min_value=0.01, value=start.spot, key=f"spot_{u}")
        quote_date = middle.date_input("Quote date", value=start.quote_date, key=f"quote_{u}")
        expiry = right.date_input("Expiry", value=start.expiry, key=f"expiry_{u}")
        vol_pct = right.number_input("Historical vol for the baseline (%)", min_value=0.01,
                                     value=round(100 * (vol or 0.20), 2), key=f"vol_{u}",
                                     help="The underlying's 20-day realised vol, from the market "
                                          "data")  # fmt: skip
        with st.expander("Rate and dividend yield (empty: the model's)"):
            a, b = st.columns(2)
            rate = a.number_input("Rate (%)", value=None, key=f"rate_{u}", format="%.3f")
            q = b.number_input("Dividend yield (%)", value=None, key=f"q_{u}", format="%.3f")
        st.form_submit_button("Price", type="primary")
    contract = data.Contract(u, kind, strike, expiry, quote_date, spot,
                             None if rate is None else rate / 100,
                             None if q is None else q / 100)  # fmt: skip
    return contract, vol_pct / 100


def show_quote(cfg, client, market, contract: data.Contract, vol: float) -> None:
    """Model vs baseline (vs market) for the form's contract."""
    base_iv, base_price = data.baseline_quote(contract, vol, cfg)
    model = st.columns(4)
    try:
        priced = client.price([contract.as_json()])
    except data.ServiceError as exc:
        st.error(str(exc))
        priced = None
    if priced is not None:
        model[0].metric("Model price", f"{priced.price[0]:,.4f}")
        model[1].metric("Model IV", f"{100 * priced.iv[0]:.2f}%")
    model[2].metric("BS price (hist vol)", f"{base_price:,.4f}")
    model[3].metric("BS vol (20-day hist)", f"{100 * base_iv:.2f}%")
    if priced is not None:
        diff = priced.price[0] - base_price
        st.caption(f"Priced by **{cfg.model_name} v{priced.version}** at {client.url}. "
                   f"Model − BS: {diff:+,.4f}.")  # fmt: skip
    listed = data.market_quote(market, contract) if market is not None else None
    if listed:
        iv = "n/a" if pd.isna(listed["iv"]) else f"{100 * listed['iv']:.2f}%"
        st.caption(f"Market on {contract.quote_date}: bid {listed['bid']:,.4f}, ask "
                   f"{listed['ask']:,.4f}, mid {listed['mid']:,.4f}, mid IV {iv}.")  # fmt: skip


# -- smile ------------------------------------------------------------------------------------
def smile(cfg: data.AppConfig, client: data.PricingClient, market: pd.DataFrame | None) -> None:
    if market is None:
        st.info(f"No feature table in {cfg.processed_dir}: `make run` builds the market data "
                "the smile is drawn from.")  # fmt: skip
        return
    left, right = st.columns(2)
    underlying = left.selectbox("Underlying", data.underlyings(market), key="smile_underlying")
    choices = data.expiries(market, underlying)
    today = data.market_date(market)
    start = data.default_contract(market, underlying).expiry
    expiry = right.selectbox("Expiry", choices, index=choices.index(start),
                             key=f"smile_expiry_{underlying}",
                             format_func=lambda d: f"{d} ({(d - today).days} days)")  # fmt: skip
    rows = data.smile(market, underlying, expiry)
    version = None
    try:
        rows, version = data.with_model(rows, client)
    except data.ServiceError as exc:
        st.error(str(exc))
    st.altair_chart(smile_chart(data.smile_lines(rows)), width="stretch")
    who = f"model: {cfg.model_name} v{version}" if version else "model: not available"
    st.caption(f"{underlying} {expiry}, market of {today}: {len(rows)} strikes (out-of-the-money "
               f"side, reliable mid IVs); {who}; baseline: Black-Scholes with the 20-day "
               "historical vol.")  # fmt: skip
    with st.expander("Table"):
        st.dataframe(smile_table(rows), hide_index=True)


def smile_chart(lines: pd.DataFrame) -> alt.Chart:
    """Market mids as points, model and baseline as lines; IV in vol points against strike."""
    shown = [s for s in SERIES_COLORS if s in set(lines["series"])]
    color = alt.Color("series:N", title=None, legend=alt.Legend(orient="top"),
                      scale=alt.Scale(domain=shown,
                                      range=[SERIES_COLORS[s] for s in shown]))  # fmt: skip
    base = alt.Chart(lines).encode(
        x=alt.X("strike:Q", title="strike", scale=alt.Scale(zero=False)),
        y=alt.Y("iv:Q", title="implied vol (%)", scale=alt.Scale(zero=False)),
        color=color,
        tooltip=["series", "strike", alt.Tooltip("iv:Q", format=".2f")],
    )
    points = base.transform_filter(alt.datum.series == "market mid").mark_circle(size=40)
    curves = base.transform_filter(alt.datum.series != "market mid").mark_line(strokeWidth=2)
    return (points + curves).properties(height=420)


def smile_table(rows: pd.DataFrame) -> pd.DataFrame:
    columns = {"strike": "strike", "option_type": "type", "bid": "bid", "ask": "ask",
               "mid": "mid", "iv": "market IV", "model_price": "model price",
               "model_iv": "model IV", "baseline_price": "BS price", "baseline_iv": "BS IV"}  # fmt: skip
    return rows[[c for c in columns if c in rows]].rename(columns=columns)


# -- registry ---------------------------------------------------------------------------------
def registry(cfg: data.AppConfig) -> None:
    try:
        view = registry_view(cfg.tracking_uri, cfg.model_name)
    except data.RegistryError as exc:
        st.error(str(exc))
        return
    if view.empty:
        st.info(f"No model '{cfg.model_name}' is registered in {view.uri} yet: `make run` trains "
                "one and leaves it in Staging.")  # fmt: skip
        return
    versions = view.versions
    left, right, _ = st.columns(3)
    for column, stage in ((left, "Production"), (right, "Staging")):
        holder = versions.loc[versions["stage"] == stage, "version"]
        column.metric(stage, f"v{holder.iloc[0]}" if len(holder) else "none")
    for problem in view.problems:
        st.warning(f"Stages and aliases disagree: {problem}")
    st.subheader("Versions")
    st.dataframe(versions, hide_index=True, column_config=VERSION_FORMATS)
    st.subheader("Gate verdicts")
    if not view.verdicts:
        st.caption("No gate verdicts yet (model_evaluate records them on the candidate).")
    for version, verdict in sorted(view.verdicts.items(), key=lambda kv: -int(kv[0])):
        mark = "✅" if verdict["passed"] else "❌"
        with st.expander(f"{mark} v{version}: {verdict['verdict']} ({verdict['evaluated_at']})"):
            st.markdown("\n".join(f"- {reason}" for reason in verdict["reasons"]) or "no reasons")
            if verdict["metrics"]:
                st.json(verdict["metrics"], expanded=False)
    st.subheader("Promotion history")
    if view.history.empty:
        st.caption("No promotions or rollbacks yet (`make promote`).")
    else:
        st.dataframe(view.history, hide_index=True)


VERSION_FORMATS = {
    "IV RMSE (vol pts)": st.column_config.NumberColumn(format="%.3f", help="holdout, training run"),
    "vs best baseline": st.column_config.NumberColumn(format="%.2f", help="IV RMSE ratio"),
    "price R²": st.column_config.NumberColumn(format="%.6f"),
    "in [bid, ask]": st.column_config.NumberColumn(
        format="percent", help="model prices inside the quoted spread"
    ),
}


# -- page -------------------------------------------------------------------------------------
def main() -> None:
    st.set_page_config(page_title="Options pricer", page_icon="📈", layout="wide")
    st.title("Options pricer")
    cfg = data.load_config()
    client = data.PricingClient(cfg.pricing_url)
    try:
        market, path = load_market(cfg)
    except Exception as exc:
        show_error(exc, "reading the market data")
        market, path = None, None
    sidebar(cfg, client, path)
    tab_pricer, tab_smile, tab_registry = st.tabs(["Pricer", "Smile", "Registry"])
    for tab, what, render in ((tab_pricer, "the pricer", lambda: pricer(cfg, client, market)),
                              (tab_smile, "the smile", lambda: smile(cfg, client, market)),
                              (tab_registry, "the registry panel", lambda: registry(cfg))):  # fmt: skip
        with tab:
            try:
                render()
            except Exception as exc:  # a bug or a bad file: one sentence, the other tabs still work
                show_error(exc, what)


main()
