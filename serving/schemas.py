"""The pricing service's request and response types (pydantic), and how bad requests are reported.

`parse_price_request(body)` turns the raw bytes of a POST /price body into a validated
`PriceRequest`, or raises `Rejection` carrying the HTTP status and the contract's error body:

    400  the body is not JSON, or not a JSON object
    413  the body is larger than MAX_BODY_BYTES
    415  the body is declared as something other than JSON (`check_content_type`: the
         Content-Type header must be application/json, parameters such as charset allowed; a
         request without one is read as JSON, as BentoML does)
    422  {"error": "<one sentence>", "problems": [{"index": 3, "field": "strike",
          "message": "must be > 0, got -1.0"}, ...]}: every problem of every contract is listed;
          one bad contract rejects the whole request (nothing is priced)

Bounds (bad input must get a 4xx, never a crash or a meaningless number):
- strike and spot: finite, > 0 and ≤ MAX_LEVEL (10,000,000: no listed underlying trades near it;
  a larger figure is a unit mistake, and 1e300 would overflow the pricing maths);
- rate and dividend_yield: finite, within ±MAX_RATE (±100% a year) or null (the model's default);
- dates: YYYY-MM-DD between 1900-01-01 and 2200-12-31; expiry after quote_date and at most
  MAX_YEARS years after it;
- option (OCC symbol, optional): printable ASCII, OPTION_SYMBOL_PATTERN: letters, digits,
  spaces (OCC's own alphabet: SPY261218C00500000, or padded "SPY   261218C00500000") and the
  '.', '_', '-' of other spellings of roots (BRK.B, _SPX); no control, invisible or non-ASCII
  characters (NUL, a right-to-left override, another script's digits): 422 naming the field;
- 1 to MAX_CONTRACTS (10,000) contracts per request; no fields besides the ones below.
JSON's non-standard NaN/Infinity tokens parse, then fail the finite-number check.

The model adds its plausibility bounds (pipeline/model/plausibility.py), answered with the same
422 naming contract and field: strike and spot at least MIN_LEVEL (0.01), a strike within a
factor of MAX_STRIKE_RATIO (1,000) of spot. They need the model (moneyness spans two fields; the
model refuses such rows from every caller), so they are checked when the contracts are priced.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_core import PydanticCustomError

from pipeline.model.plausibility import MAX_LEVEL, MAX_RATE, MAX_STRIKE_RATIO, MAX_YEARS, MIN_LEVEL

MAX_CONTRACTS = 10_000
MAX_BODY_BYTES = 16 * 1024 * 1024  # ~5x a maximal request with long OCC symbols
JSON_MEDIA_TYPE = "application/json"
# the characters of an option symbol (see the module docstring); ASCII ranges, not \w or \d
OPTION_SYMBOL_PATTERN = r"^[A-Za-z0-9 ._-]+$"
OPTION_SYMBOL_CHARACTERS = "ASCII letters, digits, spaces, '.', '_' and '-'"
FIRST_DATE, LAST_DATE = dt.date(1900, 1, 1), dt.date(2200, 12, 31)
SHOWN = 5  # problems quoted in the one-sentence error


def _documented_level(schema: dict) -> None:
    """A level's bounds in the OpenAPI page: minimum MIN_LEVEL, the model's floor (values in
    (0, MIN_LEVEL) pass the schema's "> 0" and get the model's 422). Pydantic writes `gt=0` as
    "exclusiveMinimum": 0, a number, which OpenAPI 3.0's JSON Schema (draft 4: a boolean next
    to "minimum") does not allow: schemathesis and code generators refuse the page."""
    schema.pop("exclusiveMinimum", None)
    schema["minimum"] = MIN_LEVEL


Level = Annotated[
    float, Field(gt=0, le=MAX_LEVEL, allow_inf_nan=False, json_schema_extra=_documented_level)
]
Rate = Annotated[float, Field(ge=-MAX_RATE, le=MAX_RATE, allow_inf_nan=False)]
Day = Annotated[dt.date, Field(ge=FIRST_DATE, le=LAST_DATE)]


class Contract(BaseModel):
    """One option contract to price. Dates are YYYY-MM-DD; numbers are JSON numbers."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,  # "500" is not a strike, true is not a spot
        json_schema_extra={
            "example": {
                "underlying": "SPY",
                "option_type": "C",
                "strike": 500.0,
                "expiry": "2026-12-18",
                "quote_date": "2026-11-20",
                "spot": 510.2,
            }
        },
    )

    underlying: str = Field(
        min_length=1,
        max_length=32,
        description="Underlying symbol as the model knows it (Cboe spelling: SPY, _SPX, ...)",
    )
    option_type: Literal["C", "P"] = Field(description="'C' (call) or 'P' (put)")
    strike: Level = Field(
        description=f"Strike price, > 0; the model refuses one under {MIN_LEVEL:g} or more than "
        f"{MAX_STRIKE_RATIO:,}× away from spot (422)"
    )
    expiry: Day = Field(description="Expiry date (YYYY-MM-DD), after quote_date")
    quote_date: Day = Field(description="Pricing date (YYYY-MM-DD)")
    spot: Level = Field(
        description=f"Underlying price on quote_date, > 0; the model refuses one under {MIN_LEVEL:g}"
    )
    rate: Rate | None = Field(
        default=None, description="Continuous risk-free rate; null: the model's"
    )
    dividend_yield: Rate | None = Field(
        default=None, description="Continuous dividend yield; null: the model's for the underlying"
    )
    option: str | None = Field(
        default=None,
        max_length=64,
        pattern=OPTION_SYMBOL_PATTERN,
        description="OCC option symbol (e.g. SPY261218C00500000; "
        f"{OPTION_SYMBOL_CHARACTERS} only): lets the model use the contract's own previous-day IV",
    )

    @model_validator(mode="after")
    def _expiry_after_quote_date(self) -> Contract:
        if self.expiry <= self.quote_date:
            raise PydanticCustomError(
                "expiry_not_after_quote_date",
                "expiry {expiry} must be after quote_date {quote_date}",
                {"expiry": str(self.expiry), "quote_date": str(self.quote_date)},
            )
        if (self.expiry - self.quote_date).days > MAX_YEARS * 366:
            raise PydanticCustomError(
                "expiry_too_far",
                "expiry {expiry} is more than {years} years after quote_date {quote_date}",
                {
                    "expiry": str(self.expiry),
                    "quote_date": str(self.quote_date),
                    "years": MAX_YEARS,
                },
            )
        return self


class PriceRequest(BaseModel):
    """A batch of contracts, priced together by one model version."""

    model_config = ConfigDict(extra="forbid", strict=True)

    contracts: list[Contract] = Field(
        min_length=1, max_length=MAX_CONTRACTS, description="1 to 10,000 contracts"
    )


class PriceResult(BaseModel):
    iv: float = Field(description="Model implied volatility (annualised, 0.18 = 18%)")
    price: float = Field(description="Black-Scholes-Merton price with that IV")
    model_version: str = Field(description="Registry version of the model that priced it")


class PriceResponse(BaseModel):
    model_version: str = Field(description="Registry version of the model that priced the batch")
    results: list[PriceResult] = Field(description="One result per contract, in request order")


class Problem(BaseModel):
    index: int | None = Field(description="Position of the contract in `contracts` (0-based)")
    field: str | None = Field(description="The field at fault, if one is")
    message: str


class ErrorBody(BaseModel):
    error: str = Field(description="One sentence naming the problem")
    problems: list[Problem] = Field(default_factory=list)


class Rejection(Exception):
    """A request refused before pricing: HTTP `status` and the error body to send."""

    def __init__(self, status: int, error: str, problems: list[Problem] | None = None):
        super().__init__(error)
        self.status = status
        self.body = ErrorBody(error=error, problems=problems or [])


def check_content_type(content_type: str | None) -> None:
    """Rejection(415) unless a POST /price body is declared as JSON (see the module docstring)."""
    if not content_type or content_type.split(";")[0].strip().lower() == JSON_MEDIA_TYPE:
        return
    shown = _show(content_type)
    header = Problem(
        index=None, field="Content-Type", message=f"must be {JSON_MEDIA_TYPE}, got {shown}"
    )
    raise Rejection(415, f"unsupported Content-Type {shown}: send the body as JSON, with the "
                         f"header 'Content-Type: {JSON_MEDIA_TYPE}'", [header])  # fmt: skip


def parse_price_request(body: bytes) -> PriceRequest:
    """Validate a POST /price body; raises Rejection (400/413/422) naming every problem."""
    if len(body) > MAX_BODY_BYTES:
        raise Rejection(413, f"request body of {len(body):,} bytes is over the limit of "
                             f"{MAX_BODY_BYTES:,}; send at most {MAX_CONTRACTS:,} contracts")  # fmt: skip
    if not body.strip():
        raise Rejection(400, 'empty request body: expected a JSON object {"contracts": [...]}')
    try:
        return PriceRequest.model_validate_json(body)
    except ValidationError as exc:
        raise rejection(exc) from None


def rejection(exc: ValidationError) -> Rejection:
    """The Rejection for a PriceRequest validation error: 400 for a body that is not a JSON
    object, else 422 with one Problem per error."""
    errors = exc.errors(include_url=False)
    top = errors[0]
    if top["type"] == "json_invalid":
        return Rejection(400, f"malformed JSON: {top['ctx']['error']}")
    if top["loc"] == ():
        return Rejection(400, 'the body must be a JSON object {"contracts": [...]}, '
                              f"got {_json_kind(top.get('input'))}")  # fmt: skip
    problems = [problem(e) for e in errors]
    return Rejection(422, summary(problems), problems)


def problem(error: dict[str, Any]) -> Problem:
    """One pydantic error as a Problem: loc ('contracts', 3, 'strike') → index 3, field strike."""
    loc = error["loc"]
    index = loc[1] if len(loc) > 1 and loc[0] == "contracts" and isinstance(loc[1], int) else None
    field = _field_name(str(loc[2])) if index is not None and len(loc) > 2 else None
    if index is None and loc:  # a problem of the request itself: a stray key, contracts missing
        field = _field_name(".".join(map(str, loc)))
    if error["type"] in ("expiry_not_after_quote_date", "expiry_too_far"):
        field = "expiry"
    return Problem(index=index, field=field, message=_message(error))


def _field_name(name: str) -> str:
    """A field as the client spelled it; quoted (and cut short) when it would not read as a name
    in a sentence: empty, padded, long, with control or invisible characters (a stray key can be
    anything, e.g. "" or "\\r")."""
    plain = 0 < len(name) <= 40 and name.isprintable() and name.strip() == name
    return name if plain else _show(name)


def _message(error: dict[str, Any]) -> str:
    kind, ctx = error["type"], error.get("ctx") or {}
    if kind == "missing":
        return "is required"
    if kind == "extra_forbidden":
        known = list(PriceRequest.model_fields if len(error["loc"]) == 1 else Contract.model_fields)
        return f"is not a known field (known: {', '.join(known)})"
    if kind == "too_long" and error["loc"] == ("contracts",):
        return (f"{ctx.get('actual_length', 'too many'):,} contracts: a request holds at most "
                f"{MAX_CONTRACTS:,}; split the batch")  # fmt: skip
    if kind == "too_short" and error["loc"] == ("contracts",):
        return "is empty: send at least one contract"
    if kind == "string_pattern_mismatch" and error["loc"][-1:] == ("option",):
        return (f"must be an option symbol of {OPTION_SYMBOL_CHARACTERS} (OCC: "
                f"SPY261218C00500000), got {_show(error['input'])}")  # fmt: skip
    message = error["msg"]
    for pydantic_words, ours in (
        ("Input should be greater than or equal to", "must be ≥"),
        ("Input should be less than or equal to", "must be ≤"),
        ("Input should be greater than", "must be >"),
        ("Input should be less than", "must be <"),
        ("Input should be", "must be"),
        ("String should have", "must have"),
    ):
        if message.startswith(pydantic_words):
            message = ours + message[len(pydantic_words) :]
            break
    if "input" in error and kind not in ("expiry_not_after_quote_date", "expiry_too_far"):
        message += f", got {_show(error['input'])}"
    return message


def _show(value: Any) -> str:
    """A bad input as the client sent it (JSON spelling, cut short)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    text = repr(value) if isinstance(value, str) else _json_kind(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _json_kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a JSON object"
    if isinstance(value, list):
        return "a JSON array"
    if isinstance(value, str):
        return "a JSON string"
    if value is None:
        return "null"
    return str(value)


def summary(problems: list[Problem]) -> str:
    """The one sentence of a 422: how many contracts are bad and the first problems."""
    bad = sorted({p.index for p in problems if p.index is not None})
    shown = "; ".join(_where(p) + p.message for p in problems[:SHOWN])
    more = f" (and {len(problems) - SHOWN} more)" if len(problems) > SHOWN else ""
    what = f"{len(bad)} invalid contract(s), nothing priced: " if bad else "invalid request: "
    return what + shown + more


def _where(p: Problem) -> str:
    if p.index is None:
        return f"{p.field}: " if p.field else ""
    return f"contract {p.index}" + (f" {p.field}: " if p.field else ": ")
