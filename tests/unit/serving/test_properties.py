"""Properties of the request schema (serving.schemas): whatever JSON a client puts in a contract's
fields, `parse_price_request` either returns contracts the model can take (finite numbers within
the bounds, dates in order, an option symbol of printable ASCII) or raises a 4xx Rejection whose
problems name the contract and the field. Never another exception."""

from __future__ import annotations

import json
import math
import re

from hypothesis import example, given, settings
from hypothesis import strategies as st

from serving.schemas import (
    MAX_LEVEL,
    MAX_RATE,
    PriceRequest,
    Rejection,
    check_content_type,
    parse_price_request,
)
from tests.unit.serving.fakes import CONTRACT

FIELDS = sorted(PriceRequest.model_fields["contracts"].annotation.__args__[0].model_fields)
JSON_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=5), children, max_size=3)
    ),
    max_leaves=5,
)
SETTINGS = settings(max_examples=200, deadline=None, derandomize=True)
OPTION_CHARACTERS = re.compile(r"[A-Za-z0-9 ._-]+")


def body(*contracts: dict) -> bytes:
    return json.dumps({"contracts": list(contracts)}, allow_nan=True).encode()


@SETTINGS
@given(field=st.sampled_from(FIELDS), value=JSON_VALUE)
@example(field="option", value="SPY\x00")
@example(field="option", value="SPY\u202e260619C00600000")
@example(field="spot", value=5e-324)
def test_any_json_value_in_any_field_parses_within_bounds_or_is_refused_naming_it(field, value):
    try:
        request = parse_price_request(body(CONTRACT, {**CONTRACT, field: value}))
    except Rejection as rejection:
        assert rejection.status == 422, rejection.body
        problems = [(p.index, p.field) for p in rejection.body.problems]
        assert problems == [(1, field)], rejection.body
        assert f"contract 1 {field}: " in rejection.body.error
        return
    contract = request.contracts[1]
    for level in (contract.strike, contract.spot):
        assert math.isfinite(level) and 0 < level <= MAX_LEVEL
    for rate in (contract.rate, contract.dividend_yield):
        assert rate is None or (math.isfinite(rate) and abs(rate) <= MAX_RATE)
    assert contract.expiry > contract.quote_date
    assert contract.option is None or OPTION_CHARACTERS.fullmatch(contract.option)


@SETTINGS
@given(option=st.text(max_size=30))
@example(option="SPY260619C00600000")
@example(option="SPY\u202e260619C00600000")
def test_an_option_symbol_is_accepted_exactly_when_it_is_printable_ascii(option):
    try:
        parse_price_request(body({**CONTRACT, "option": option}))
    except Rejection as rejection:
        assert not OPTION_CHARACTERS.fullmatch(option) and [
            (p.index, p.field) for p in rejection.body.problems
        ] == [(0, "option")]
        return
    assert OPTION_CHARACTERS.fullmatch(option)


@SETTINGS
@given(content_type=st.text(max_size=40))
@example(content_type="application/json; charset=utf-8")
@example(content_type="text/plain")
def test_only_json_content_types_are_accepted(content_type):
    try:
        check_content_type(content_type)
    except Rejection as rejection:
        assert rejection.status == 415
        assert [(p.index, p.field) for p in rejection.body.problems] == [(None, "Content-Type")]
        return
    assert not content_type or content_type.split(";")[0].strip().lower() == "application/json"


@SETTINGS
@given(key=st.text(max_size=60).filter(lambda k: k not in FIELDS), top_level=st.booleans())
@example(key="\r", top_level=True)
@example(key="", top_level=False)
def test_a_stray_key_is_named_printably_in_the_problem_and_the_sentence(key, top_level):
    """Schemathesis found stray keys "" and "\\r" named by an empty or unprintable field."""
    contract = CONTRACT if top_level else {**CONTRACT, key: 1}
    raw = {"contracts": [contract], **({key: 1} if top_level else {})}
    try:
        parse_price_request(json.dumps(raw).encode())
    except Rejection as rejection:
        (problem,) = rejection.body.problems
        assert problem.index == (None if top_level else 0)
        assert (
            problem.field and problem.field.isprintable() and problem.field.strip() == problem.field
        )
        assert problem.field in rejection.body.error and "is not a known field" in problem.message
        return
    raise AssertionError(f"stray key {key!r} accepted")
