"""The model that is served is the model that is monitored, and its surface moves every day.

A real `bentoml serve` on the tiny registry (Production v1, trained through 2026-03-31) is left
running, without a retrain or a reload, while three more trading days arrive (fetch, validate,
features: each publishes its day's market state). Each day, before that day's features exist,
the service prices the day's contracts (with the state published the trading day before, read
as it appears); then the monitor's scoring path (pipeline.monitor.score on the day's feature
file) predicts the same contracts: the two must be equal. Tomorrow's contracts priced before and
after today's state appears get different answers (the state is read when it appears). A quote
date whose state is missing or too old gets a 422 naming the dates, never a stale price.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from pipeline import monitor
from pipeline.artifacts import Artifacts
from pipeline.main import run_pipeline
from pipeline.model import packaging
from tests.serving_helpers import (  # noqa: F401
    registry_config,
    registry_copy,
    running_service,
    tiny_registry,
    tracking_at,
)

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DAYS = ["2026-04-01", "2026-04-02", "2026-04-06"]  # 2026-04-03 is Good Friday: closed
FIELDS = ["underlying", "option_type", "strike", "expiry", "quote_date", "spot", "option"]


def _contracts(frame: pd.DataFrame) -> list[dict]:
    rows = frame[FIELDS].assign(expiry=frame["expiry"].dt.strftime("%Y-%m-%d"),
                                quote_date=frame["quote_date"].dt.strftime("%Y-%m-%d"))  # fmt: skip
    return json.loads(rows.to_json(orient="records"))


def _day_quotes(root, day: str) -> pd.DataFrame:
    """The day's market (validated quotes), fetched and validated only: no features, no state."""
    cfg = registry_config(root, f"main.start_date={day}", f"main.end_date={day}",
                          "main.tasks=[data_fetch,data_validate]")  # fmt: skip
    with tracking_at(cfg):
        run_pipeline(cfg)
    return pd.read_parquet(Artifacts(cfg.paths).validated_quotes(pd.Timestamp(day).date()))


def _features(root, day: str) -> None:
    cfg = registry_config(root, f"main.start_date={day}", f"main.end_date={day}",
                          "main.tasks=[feature_engineer]")  # fmt: skip
    with tracking_at(cfg):
        run_pipeline(cfg)


def test_the_service_answers_what_the_monitor_predicts_on_three_new_days(registry_copy):  # noqa: F811
    root = registry_copy.root
    cfg = registry_config(root)
    art = Artifacts(cfg.paths)
    uri = f"models:/{registry_copy.model_name}/{registry_copy.production}"
    with running_service(registry_copy.tracking_uri) as service:
        for i, day in enumerate(DAYS):
            quotes = _day_quotes(root, day).sample(150, random_state=i).reset_index(drop=True)
            answer = service.post("/price", json={"contracts": _contracts(quotes)})
            assert answer.status_code == 200, answer.text
            served = pd.DataFrame(answer.json()["results"])
            assert (served["model_version"] == registry_copy.production).all()
            # tomorrow's contracts, before today's state exists: priced off yesterday's state
            # (max_state_age_days=2); once today's state is published, off today's, unasked
            nxt = DAYS[i + 1] if i + 1 < len(DAYS) else "2026-04-07"
            tomorrow = {
                "contracts": _contracts(quotes.head(20).assign(quote_date=pd.Timestamp(nxt)))
            }
            before = service.post("/price", json=tomorrow)
            assert before.status_code == 200, before.text
            _features(root, day)  # publishes today's state: no reload, no retrain
            after = service.post("/price", json=tomorrow)
            moved = [a["iv"] != b["iv"] for a, b in zip(after.json()["results"],
                                                         before.json()["results"], strict=True)]  # fmt: skip
            assert all(moved)
            assert art.market_state(pd.Timestamp(day).date()).exists()
            with tracking_at(cfg):
                model = packaging.served_model(uri, art.state_dir, cfg.serving.max_state_age_days)
                scored = monitor.score(model, monitor.read_scored_input(
                    art.features(pd.Timestamp(day).date()), monitor.model_features(
                        registry_copy.registry().resolve("production")), "current data"))  # fmt: skip
            mine = quotes.merge(scored[["option", "iv_pred"]], on="option", how="inner")
            assert len(mine) > 50  # the monitor scores informative quotes: most of the sample
            both = served.assign(option=quotes["option"]).merge(mine, on="option")
            np.testing.assert_allclose(both["iv"], both["iv_pred"], rtol=0, atol=1e-12)
        # the state of 2026-04-02 priced 2026-04-06; a day two weeks on has none recent enough
        late = service.post("/price", json={"contracts": _contracts(
            quotes.head(1).assign(quote_date=pd.Timestamp("2026-04-20"),
                                  expiry=pd.Timestamp("2026-09-18")))})  # fmt: skip
        assert late.status_code == 422
        assert "newest state before it is 2026-04-06" in late.json()["error"]
