"""Cboe days fetched one evening at a time, then `main` over the range: each fetched day is
reused, whatever `date` fetched it. Cboe serves only the current session: a refetch of a past
day gets today's quotes, and fails."""

from __future__ import annotations

import datetime as dt
import json
from http.server import BaseHTTPRequestHandler

import pytest

from pipeline import data_fetch
from pipeline.main import run_pipeline
from pipeline.market.synthetic import generate_chain
from pipeline.runtime import execute
from tests.helpers import CBOE_PATH, answer, http_server

pytestmark = pytest.mark.integration
DAYS = [dt.date(2026, 3, 2), dt.date(2026, 3, 3)]
DATA_TASKS = "main.tasks=[data_fetch,data_validate,feature_engineer]"


@pytest.fixture
def cboe(make_cfg):
    """A Cboe endpoint on 127.0.0.1 serving SPY's chain of the current session,
    `session["day"]` (the synthetic market's chain for that day)."""
    synthetic = make_cfg(tiny=False)
    session: dict[str, dt.date] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's name)
            symbol = self.path.rsplit("/", 1)[-1].removesuffix(".json")
            if symbol != "SPY":
                self.send_response(403)
                self.end_headers()
                return
            chain = generate_chain(
                symbol, session["day"], synthetic.data_fetch.synthetic, synthetic.market
            )[0]
            body = json.dumps(chain).encode()
            answer(self, 200, "application/json", body)

        def log_message(self, *args):
            pass

    with http_server(Handler) as url:
        yield url + CBOE_PATH, session


def test_main_reuses_the_days_fetched_one_at_a_time(make_cfg, tracking, cboe):
    url, session = cboe

    def cfg(*overrides: str):
        return make_cfg(
            "data_fetch=cboe",
            f"data_fetch.cboe.base_url={url}",
            "data_fetch.cboe.symbols=[SPY]",
            *overrides,
            tiny=False,
        )

    # the first evening: that session, fetched on its own
    session["day"] = DAYS[0]
    first = execute(data_fetch.SPEC, cfg(f"date={DAYS[0]}"), DAYS[0])
    assert first.status == "succeeded"

    # the next evening Cboe serves the next session; main runs over both days
    session["day"] = DAYS[1]
    outcomes = run_pipeline(cfg(f"date={DAYS[1]}", f"main.start_date={DAYS[0]}", DATA_TASKS))
    fetched = {o.date: o for o in outcomes if o.task == "data_fetch"}
    assert fetched[DAYS[0]].status == "skipped"
    assert fetched[DAYS[0]].reused_run_id == first.run_id
    assert fetched[DAYS[1]].status == "succeeded"
    assert {o.status for o in outcomes if o.task != "data_fetch"} == {"succeeded"}
