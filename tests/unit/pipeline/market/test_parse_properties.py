"""Property tests for the Cboe parser: whatever JSON arrives, `chain_to_frame` gives a raw frame
in the contract's shape or raises one of its documented errors with a readable message, never
anything else (a TypeError deep in pandas would end the day as an unexplained task_failed)."""

from __future__ import annotations

import copy
import json
import math

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.market.parse import (
    KNOWN_CONTRACT_KEYS,
    RAW_COLUMNS,
    REQUIRED_CONTRACT_KEYS,
    EmptyChainError,
    MalformedPayloadError,
    chain_to_frame,
)
from tests.unit.pipeline.market.conftest import FIXTURES

SPY = json.loads((FIXTURES / "spy_chain.json").read_text())
PROPERTY = settings(
    max_examples=200,
    deadline=None,
    database=None,  # nothing written into the working tree
    suppress_health_check=[HealthCheck.too_slow],
)

# JSON as Python's json module reads it: NaN and ±Infinity included, integers of any size
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.integers(min_value=-(10**400), max_value=10**400)
    | st.floats()
    | st.text(max_size=30)
    | st.sampled_from(["", "NaN", "null", "2025-11-21 16:15:03", "SPY251205C00655000", "1e999"])
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=12,
)


def assert_frame_or_documented_error(payload) -> None:
    try:
        frame = chain_to_frame(payload)
    except (MalformedPayloadError, EmptyChainError) as exc:  # schema changes are malformed too
        message = str(exc)
        assert message.startswith("Cboe payload for "), message
        assert len(message) < 1000, message
        return
    assert list(frame.columns) == list(RAW_COLUMNS)
    assert frame.dtypes.astype(str).to_dict() == RAW_COLUMNS
    assert len(frame) == len(payload["data"]["options"])


@PROPERTY
@given(json_values)
def test_any_json_value(payload):
    assert_frame_or_documented_error(payload)


contracts = st.fixed_dictionaries(
    {key: json_values for key in REQUIRED_CONTRACT_KEYS},
    optional={
        "last_trade_price": json_values,
        "last_trade_time": json_values,
        "bid_price": json_values,
    },
)


@PROPERTY
@given(
    st.fixed_dictionaries(
        {
            "timestamp": json_values | st.just("2025-11-21T16:15:03-05:00"),
            "symbol": json_values,
            "data": st.fixed_dictionaries(
                {"current_price": json_values, "options": st.lists(contracts, max_size=4)}
            ),
        }
    )
)
def test_cboe_shaped_payload_with_any_values(payload):
    assert_frame_or_documented_error(payload)


def _paths(node, prefix=()):
    """Every (path, value) inside a JSON value, the root included."""
    yield prefix, node
    if isinstance(node, dict):
        for key, child in node.items():
            yield from _paths(child, (*prefix, key))
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from _paths(child, (*prefix, i))


def _parent(payload, path):
    node = payload
    for step in path[:-1]:
        node = node[step]
    return node


@PROPERTY
@given(st.data())
def test_mutated_valid_payload(data):
    """The fixture with a few edits: a value replaced by any JSON, a key dropped, renamed or
    added, contracts dropped or repeated."""
    payload = copy.deepcopy(SPY)
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        paths = [p for p, _ in _paths(payload) if p]
        if not paths:
            break
        path = data.draw(st.sampled_from(paths), label="path")
        parent, last = _parent(payload, path), path[-1]
        edit = data.draw(st.sampled_from(["replace", "drop", "rename", "add", "repeat"]))
        if edit == "replace":
            parent[last] = data.draw(json_values, label="value")
        elif edit == "drop":
            del parent[last]
        elif edit == "rename" and isinstance(parent, dict):
            new = data.draw(st.sampled_from([*KNOWN_CONTRACT_KEYS, "bid_price", "Bid", ""]))
            parent[new] = parent.pop(last)
        elif edit == "add" and isinstance(parent, dict):
            parent[data.draw(st.text(max_size=12), label="key")] = data.draw(json_values)
        elif edit == "repeat" and isinstance(parent, list):
            parent.insert(last, copy.deepcopy(parent[last]))
    assert_frame_or_documented_error(payload)


def test_the_unedited_fixture_parses():
    frame = chain_to_frame(copy.deepcopy(SPY))
    assert len(frame) == 7 and not math.isnan(frame["spot"].iloc[0])
