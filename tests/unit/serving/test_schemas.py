"""POST /price bodies → a validated PriceRequest, or a Rejection whose status and problems name
every bad contract by index and field (serving.schemas.parse_price_request)."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from serving.schemas import MAX_BODY_BYTES, MAX_CONTRACTS, Rejection, parse_price_request
from tests.unit.serving.fakes import CONTRACT


def body(*contracts: dict, **top) -> bytes:
    return json.dumps({"contracts": list(contracts), **top}).encode()


def with_(**changes) -> dict:
    return {k: v for k, v in {**CONTRACT, **changes}.items() if v is not DROP}


DROP = object()


def refused(raw: bytes) -> Rejection:
    with pytest.raises(Rejection) as info:
        parse_price_request(raw)
    rejection = info.value
    assert rejection.body.error and rejection.status in (400, 413, 422)
    return rejection


def test_a_good_request_is_typed():
    request = parse_price_request(body(CONTRACT, with_(option_type="P", rate=0.05, option=None)))
    first, second = request.contracts
    assert first.strike == 600.0 and first.expiry == dt.date(2026, 6, 19)
    assert first.rate is None and second.rate == 0.05 and second.option_type == "P"


def test_integers_are_numbers_and_optional_fields_may_be_null():
    contract = with_(strike=600, spot=601, rate=None, dividend_yield=None, option=None)
    assert parse_price_request(body(contract)).contracts[0].spot == 601.0


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        (b"{", "malformed JSON"),
        (b'{"contracts": [}', "malformed JSON"),
        (b"", "empty request body"),
        (b"   ", "empty request body"),
        (b"[1, 2]", "got a JSON array"),
        (b'"contracts"', "got a JSON string"),
        (b"42", "must be a JSON object"),
        (b"null", "must be a JSON object"),
    ],
)
def test_a_body_that_is_not_a_json_object_is_a_400(raw, words):
    rejection = refused(raw)
    assert rejection.status == 400 and words in rejection.body.error


# (case, contract changes, field at fault, words in the message)
BAD_CONTRACTS = [
    ("negative strike", {"strike": -1.0}, "strike", "must be > 0, got -1.0"),
    ("zero strike", {"strike": 0}, "strike", "must be > 0"),
    ("zero spot", {"spot": 0.0}, "spot", "must be > 0"),
    ("negative spot", {"spot": -5}, "spot", "must be > 0"),
    ("huge strike", {"strike": 1e308}, "strike", "must be ≤ 10000000"),
    ("huge spot", {"spot": 1e300}, "spot", "must be ≤ 10000000"),
    ("huge rate", {"rate": 1e300}, "rate", "must be ≤ 1"),
    ("negative huge dividend", {"dividend_yield": -1e10}, "dividend_yield", "must be ≥ -1"),
    ("expiry before quote date", {"expiry": "2026-03-01"}, "expiry", "must be after quote_date"),
    ("expiry on quote date", {"expiry": "2026-03-31"}, "expiry", "must be after quote_date"),
    ("expiry a century away", {"expiry": "2126-03-31"}, "expiry", "more than 30 years"),
    ("date out of pandas range", {"expiry": "9999-12-31"}, "expiry", "must be ≤ 2200-12-31"),
    ("ancient date", {"quote_date": "1800-01-01"}, "quote_date", "must be ≥ 1900-01-01"),
    ("unknown option type", {"option_type": "X"}, "option_type", "must be 'C' or 'P', got 'X'"),
    ("lower-case option type", {"option_type": "c"}, "option_type", "must be 'C' or 'P'"),
    ("word option type", {"option_type": "call"}, "option_type", "must be 'C' or 'P'"),
    ("missing strike", {"strike": DROP}, "strike", "is required"),
    ("missing underlying", {"underlying": DROP}, "underlying", "is required"),
    ("missing expiry", {"expiry": DROP}, "expiry", "is required"),
    ("strike as text", {"strike": "600"}, "strike", "must be a valid number, got '600'"),
    ("strike as bool", {"strike": True}, "strike", "must be a valid number, got true"),
    ("strike as list", {"strike": [600]}, "strike", "must be a valid number"),
    ("null strike", {"strike": None}, "strike", "must be a valid number, got null"),
    ("underlying as number", {"underlying": 123}, "underlying", "must be a valid string"),
    ("empty underlying", {"underlying": ""}, "underlying", "at least 1 character"),
    ("date in another format", {"expiry": "06/19/2026"}, "expiry", "YYYY-MM-DD"),
    ("impossible date", {"expiry": "2026-02-30"}, "expiry", "valid date"),
    ("date with a time", {"expiry": "2026-06-19T16:00:00"}, "expiry", "YYYY-MM-DD"),
    ("stray field", {"volatility": 0.2}, "volatility", "is not a known field"),
    ("rate as text", {"rate": "5%"}, "rate", "must be a valid number"),
]


@pytest.mark.parametrize(("case", "changes", "field", "words"), BAD_CONTRACTS,
                         ids=[c[0] for c in BAD_CONTRACTS])  # fmt: skip
def test_each_bad_contract_is_a_422_naming_its_index_and_field(case, changes, field, words):
    rejection = refused(body(CONTRACT, CONTRACT, with_(**changes)))
    assert rejection.status == 422
    assert [(p.index, p.field) for p in rejection.body.problems] == [(2, field)]
    assert words in rejection.body.problems[0].message
    assert "contract 2" in rejection.body.error and "nothing priced" in rejection.body.error


@pytest.mark.parametrize("token", ["NaN", "Infinity", "-Infinity", "1e400"])
@pytest.mark.parametrize("field", ["strike", "spot", "rate", "dividend_yield"])
def test_nan_and_infinity_are_refused(token, field):
    raw = body(with_(**{field: "TOKEN"})).replace(b'"TOKEN"', token.encode())
    rejection = refused(raw)
    assert rejection.status == 422
    assert [(p.index, p.field) for p in rejection.body.problems] == [(0, field)]
    assert "finite number" in rejection.body.problems[0].message


def test_every_bad_contract_is_listed_and_the_sentence_names_the_first_ones():
    bad = [with_(strike=-1.0), CONTRACT, with_(option_type="X", spot=0), with_(expiry="2020-01-01")]
    rejection = refused(body(*bad))
    problems = [(p.index, p.field) for p in rejection.body.problems]
    assert problems == [(0, "strike"), (2, "option_type"), (2, "spot"), (3, "expiry")]
    assert rejection.body.error.startswith("3 invalid contract(s), nothing priced: contract 0")


def test_many_bad_contracts_are_all_listed_but_the_sentence_stays_short():
    rejection = refused(body(*[with_(strike=-1.0)] * 500))
    assert len(rejection.body.problems) == 500
    assert "(and 495 more)" in rejection.body.error and len(rejection.body.error) < 600


def test_an_empty_batch_is_a_422():
    rejection = refused(body())
    assert rejection.status == 422 and rejection.body.problems[0].field == "contracts"
    assert "at least one contract" in rejection.body.error


@pytest.mark.parametrize("raw", [b'{"contracts": null}', b'{"contracts": {"a": 1}}', b"{}"])
def test_contracts_missing_or_not_a_list_is_a_422(raw):
    rejection = refused(raw)
    assert rejection.status == 422 and rejection.body.problems[0].field == "contracts"


def test_a_contract_that_is_not_an_object_is_named():
    rejection = refused(body(CONTRACT, "SPY C 600"))
    assert [(p.index, p.field) for p in rejection.body.problems] == [(1, None)]


def test_the_batch_limit_is_10000_contracts():
    assert len(parse_price_request(body(*[CONTRACT] * MAX_CONTRACTS)).contracts) == MAX_CONTRACTS
    rejection = refused(body(*[CONTRACT] * (MAX_CONTRACTS + 1)))
    assert rejection.status == 422
    assert rejection.body.problems[0].field == "contracts"
    assert "10,001 contracts: a request holds at most 10,000" in rejection.body.error


def test_a_stray_top_level_key_is_named():
    rejection = refused(body(CONTRACT, model_version="3"))
    assert [(p.index, p.field) for p in rejection.body.problems] == [(None, "model_version")]


def test_a_body_over_the_size_limit_is_a_413():
    rejection = refused(b" " * (MAX_BODY_BYTES + 1))
    assert rejection.status == 413 and "10,000 contracts" in rejection.body.error
