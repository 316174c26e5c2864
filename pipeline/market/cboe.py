"""HTTP client for Cboe delayed quotes: one GET per symbol, retried under the data_fetch policy.

``GET {base_url}/{SYMBOL}.json`` (indices carry a leading underscore: ``_SPX``). What happens to
each answer:

- 200 with a JSON object of the Cboe shape → `FetchResult`;
- 429, 5xx, timeouts, connection errors, a truncated body, malformed JSON, or an HTML error page
  (a non-JSON content type, or a JSON one on a body that does not parse) → `CboeTransientError`,
  retried with the policy's backoff; a ``Retry-After`` header (seconds or HTTP date) sets the
  minimum wait;
- 403 → `UnknownSymbolError` at once (Cboe's answer for unknown symbols, not a permissions issue);
- any other 4xx → `CboeRequestError` at once;
- well-formed JSON that lacks the Cboe keys → `parse.PayloadSchemaChangeError` at once (a schema
  change is not cured by asking again), or `parse.MalformedPayloadError` when it is not even an
  object of objects;
- retries exhausted → `FetchFailedError`, a DataError and deliberately not a TransientError, so the
  task-level retry around data_fetch does not multiply the attempts.

`status_codes` (in the result and on every `CboeFetchError`) lists one entry per attempt: the HTTP
status as an int, or a string for attempts that got no status: ``"timeout"``,
``"connection_error"`` (refused, reset, DNS) or ``"incomplete_body"`` (connection dropped mid-body),
or that got a 2xx status with a body that is not JSON: ``"bad_content_type"`` (not a JSON
content type, e.g. a CDN's HTML error page) or ``"malformed_json"`` (a JSON content type on a body
that does not parse: truncated, or HTML after all). data_fetch logs each as its ``http_<entry>``
metric, so only real payloads count as ``http_200``.
"""

from __future__ import annotations

import email.utils
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from tenacity import RetryCallState

from pipeline.errors import ConfigError, DataError, TransientError
from pipeline.market.parse import check_payload
from pipeline.retry import attempts_made, build_retrying

log = logging.getLogger(__name__)

# int: HTTP status; str: "timeout" | "connection_error" | "incomplete_body" | "bad_content_type"
# | "malformed_json" (see the module doc)
StatusCode = int | str


class CboeTransientError(TransientError):
    """One attempt failed in a way worth retrying; `retry_after` (seconds) is the server's hint."""

    def __init__(self, message: str, *, status: StatusCode, retry_after: float | None = None):
        super().__init__(message)
        self.status = status
        self.retry_after = retry_after


class CboeFetchError(DataError):
    """A fetch that will not succeed by retrying; carries what was seen."""

    def __init__(
        self, message: str, *, symbol: str, url: str, status_codes: list[StatusCode], attempts: int
    ):
        super().__init__(message)
        self.symbol = symbol
        self.url = url
        self.status_codes = list(status_codes)
        self.attempts = attempts


class UnknownSymbolError(CboeFetchError):
    """Cboe answered 403: it does not know the symbol."""


class CboeRequestError(CboeFetchError):
    """Cboe refused the request with a 4xx other than 403 and 429."""


class FetchFailedError(CboeFetchError):
    """Every attempt allowed by the retry policy failed transiently."""


@dataclass
class FetchResult:
    symbol: str
    payload: dict
    status_codes: list[StatusCode]  # one per attempt, see the module doc
    attempts: int


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """A ``Retry-After`` header → seconds to wait (>= 0), or None if absent or unreadable.

    Accepts delta-seconds (``"5"``, ``"1.5"``) and an HTTP date (``"Wed, 21 Oct 2015 07:28:00 GMT"``).
    """
    if value is None or not value.strip():
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when is None:
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


class CboeClient:
    """Fetch Cboe delayed-quote chains, one symbol per call (see the module doc for the rules).

    Inputs: `base_url` (``configs/data_fetch/cboe.yaml``), `timeout_s` per request (connect and
    read), `policy` (the data_fetch RetryPolicy: dataclass or DictConfig), `user_agent`; `session`
    and `sleep` are injectable for tests. Use as a context manager to close a session it created.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout_s: float,
        policy: Any,
        user_agent: str,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ):
        if not base_url or not str(base_url).startswith(("http://", "https://")):
            raise ConfigError(f"cboe base_url {base_url!r} must start with http:// or https://")
        if not timeout_s or float(timeout_s) <= 0:
            raise ConfigError(f"cboe timeout_s={timeout_s!r} must be > 0 seconds")
        self.base_url = str(base_url).rstrip("/")
        self.timeout_s = float(timeout_s)
        self.policy = policy
        self.user_agent = user_agent
        self._own_session = session is None
        self.session = session or requests.Session()
        self._sleep = sleep
        build_retrying(
            policy, retry_on=CboeTransientError
        )  # a bad policy fails here, not mid-fetch

    def __enter__(self) -> CboeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._own_session:
            self.session.close()

    def url_for(self, symbol: str) -> str:
        """``{base_url}/{symbol}.json``; ConfigError for a symbol that cannot be a path segment."""
        if not isinstance(symbol, str) or not symbol or any(c in symbol for c in "/?#% \t\n"):
            raise ConfigError(f"cboe symbol {symbol!r} is not a valid ticker (e.g. SPY, _SPX)")
        return f"{self.base_url}/{symbol}.json"

    def fetch_chain(self, symbol: str) -> FetchResult:
        """GET one symbol's chain under the retry policy → FetchResult(payload checked for shape).

        Raises UnknownSymbolError (403), CboeRequestError (other 4xx), FetchFailedError (retries
        exhausted), parse.PayloadSchemaChangeError (JSON without the Cboe keys: not retried) or
        parse.MalformedPayloadError (JSON of another shape: not retried).
        """
        url = self.url_for(symbol)
        seen: list[StatusCode] = []
        retrying = build_retrying(
            self.policy,
            retry_on=CboeTransientError,
            sleep=self._sleep,
            before_sleep=lambda rs: self._log_retry(symbol, rs),
        )
        try:
            payload = retrying(self._get_once, symbol, url, seen)
        except CboeTransientError as exc:
            attempts = attempts_made(retrying)
            raise FetchFailedError(
                f"Cboe fetch for {symbol!r} failed after {attempts} attempts ({url}); "
                f"last error: {exc}; statuses seen: {seen}",
                symbol=symbol,
                url=url,
                status_codes=seen,
                attempts=attempts,
            ) from exc
        except CboeFetchError as exc:
            exc.attempts = attempts_made(retrying)
            raise
        attempts = attempts_made(retrying)
        log.info(
            "Cboe %s: %d contracts in %d attempt(s) %s",
            symbol,
            len(payload["data"]["options"]),
            attempts,
            seen,
        )
        return FetchResult(symbol=symbol, payload=payload, status_codes=seen, attempts=attempts)

    def _get_once(self, symbol: str, url: str, seen: list[StatusCode]) -> dict:
        """One GET; appends what it saw to `seen`; returns the checked payload or raises."""
        headers = {"User-Agent": self.user_agent, "Accept": "application/json"}
        try:
            resp = self.session.get(url, timeout=self.timeout_s, headers=headers)
        except requests.Timeout as exc:  # before ConnectionError: ConnectTimeout is both
            seen.append("timeout")
            raise CboeTransientError(
                f"no answer within {self.timeout_s:g}s ({exc})", status="timeout"
            ) from exc
        except requests.ConnectionError as exc:
            seen.append("connection_error")
            raise CboeTransientError(f"connection error: {exc}", status="connection_error") from exc
        except (
            requests.exceptions.ChunkedEncodingError,
            requests.exceptions.ContentDecodingError,
        ) as exc:
            seen.append("incomplete_body")
            raise CboeTransientError(f"body cut off: {exc}", status="incomplete_body") from exc
        except requests.RequestException as exc:  # invalid URL and the like: configuration
            raise ConfigError(f"cannot request {url}: {exc}") from exc

        status = resp.status_code
        if status < 400:
            return self._decode(symbol, resp, seen)
        seen.append(status)
        if status == 403:
            raise UnknownSymbolError(
                f"Cboe answered 403 for symbol {symbol!r}: unknown symbol "
                "(indices need a leading underscore, e.g. _SPX)",
                symbol=symbol,
                url=url,
                status_codes=seen,
                attempts=len(seen),
            )
        if status == 429 or status >= 500:
            retry_after = parse_retry_after(resp.headers.get("Retry-After"))
            hint = f", Retry-After {retry_after:g}s" if retry_after is not None else ""
            raise CboeTransientError(
                f"HTTP {status} {resp.reason or ''}{hint}".strip(),
                status=status,
                retry_after=retry_after,
            )
        raise CboeRequestError(
            f"Cboe answered HTTP {status} {resp.reason or ''} for {url}",
            symbol=symbol,
            url=url,
            status_codes=seen,
            attempts=len(seen),
        )

    @staticmethod
    def _decode(symbol: str, resp: requests.Response, seen: list[StatusCode]) -> dict:
        """A 2xx body → checked payload, appending the attempt's outcome to `seen`. A body that is
        not JSON (a CDN's error page, a cut transfer) is transient, and its outcome says which:
        "bad_content_type" or "malformed_json", not the 200 it came with."""
        ctype = resp.headers.get("Content-Type", "")
        body = resp.content
        if ctype and "json" not in ctype.lower():
            seen.append("bad_content_type")
            raise CboeTransientError(
                f"HTTP {resp.status_code} with Content-Type {ctype!r}, not JSON "
                f"({len(body)} bytes, starts {body[:40]!r})",
                status="bad_content_type",
            )
        try:
            payload = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
            seen.append("malformed_json")
            what = "an HTML page" if body.lstrip()[:1] == b"<" else "malformed or truncated JSON"
            raise CboeTransientError(
                f"HTTP {resp.status_code} with {what} ({len(body)} bytes: {exc})",
                status="malformed_json",
            ) from exc
        seen.append(resp.status_code)
        check_payload(payload, symbol)  # PayloadSchemaChangeError/MalformedPayloadError: no retry
        if payload.get("symbol") != symbol:
            log.warning("Cboe answered %r for symbol %r", payload.get("symbol"), symbol)
        return payload

    def _log_retry(self, symbol: str, rs: RetryCallState) -> None:
        exc = rs.outcome.exception() if rs.outcome else None
        wait = rs.next_action.sleep if rs.next_action else 0.0
        log.warning(
            "Cboe %s: attempt %d failed (%s); retrying in %.2fs",
            symbol,
            rs.attempt_number,
            exc,
            wait,
        )
