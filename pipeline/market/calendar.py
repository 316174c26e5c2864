"""US equity-options trading calendar (the NYSE's) and a realistic listed-expiry set.

Sessions come from `exchange_calendars`' XNYS calendar, the maintained record of the NYSE: its
scheduled holidays with their history (Martin Luther King Jr. Day only from 1998, Juneteenth from
2022, ...), the unscheduled closures (1994-04-27, 2001-09-11..14, Hurricane Sandy, national days of
mourning such as 2025-01-09) and the early closes (13:00 New York on the day after Thanksgiving,
Christmas Eve, ...). It is built once per process for `CALENDAR_START`..`CALENDAR_END` from rules
shipped with the package (no network). Early-close days are trading days; `session_close` gives
each day's real close.

Every function takes a `datetime.date`, a `datetime.datetime` (its date is used), a
`pandas.Timestamp`, or a string 'YYYY-MM-DD', and returns `datetime.date` values (`session_close`
a New York datetime). Day arithmetic uses NumPy's business-day routines over the XNYS closures,
so lookups cost microseconds once the calendar is built (about half a second, on first use).
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from exchange_calendars import ExchangeCalendar

CALENDAR_START = dt.date(1990, 1, 1)
# building XNYS costs about 10 ms per calendar year: the range is what the platform needs (a
# history from 1990, listed expiries a few years out), not more
CALENDAR_END = dt.date(2040, 12, 31)
EXCHANGE = "XNYS"  # exchange_calendars' name for the New York Stock Exchange
NEW_YORK = ZoneInfo("America/New_York")


def to_date(value) -> dt.date:
    """date | datetime | Timestamp | 'YYYY-MM-DD' → datetime.date."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    if isinstance(value, str):
        return dt.date.fromisoformat(value.strip()[:10])
    return pd.Timestamp(value).date()


@lru_cache(maxsize=1)
def _xnys() -> ExchangeCalendar:
    """The XNYS calendar over CALENDAR_START..CALENDAR_END (imported here: only users pay for it)."""
    import exchange_calendars

    return exchange_calendars.get_calendar(EXCHANGE, start=CALENDAR_START, end=CALENDAR_END)


@lru_cache(maxsize=1)
def _busdaycal() -> np.busdaycalendar:
    """Weekdays are business days unless XNYS has no session on them."""
    sessions = _xnys().sessions.to_numpy().astype("datetime64[D]")
    days = np.arange(
        np.datetime64(CALENDAR_START, "D"),
        np.datetime64(CALENDAR_END, "D") + np.timedelta64(1, "D"),
        dtype="datetime64[D]",
    )
    weekdays = days[np.is_busday(days)]
    if len(sessions) != np.isin(sessions, weekdays).sum():
        raise RuntimeError(f"{EXCHANGE} lists weekend sessions: the weekday mask no longer holds")
    return np.busdaycalendar(weekmask="1111100", holidays=weekdays[~np.isin(weekdays, sessions)])


@lru_cache(maxsize=1)
def _closes() -> tuple[dt.time, dict[dt.date, dt.time]]:
    """(the regular close, {early-close day: its close}), New York wall clock."""
    xnys = _xnys()
    regular = xnys.close_times[-1][1]
    early = {
        day.date(): xnys.session_close(day).tz_convert(NEW_YORK).time() for day in xnys.early_closes
    }
    return regular, early


def _np_day(d) -> np.datetime64:
    day = to_date(d)
    if not CALENDAR_START <= day <= CALENDAR_END:
        raise ValueError(f"date {day} is outside the calendar ({CALENDAR_START}..{CALENDAR_END})")
    return np.datetime64(day, "D")


def holidays(start, end) -> list[dt.date]:
    """Weekday market closures between `start` and `end` inclusive, in order."""
    lo, hi = _np_day(start), _np_day(end)
    table = _busdaycal().holidays
    return [d.item() for d in table[(table >= lo) & (table <= hi)]]


def early_closes(start, end) -> list[dt.date]:
    """Trading days between `start` and `end` inclusive whose session closes early, in order."""
    lo, hi = _np_day(start).item(), _np_day(end).item()
    return sorted(d for d in _closes()[1] if lo <= d <= hi)


def is_trading_day(d) -> bool:
    """True when US equity options trade on `d` (a weekday on which the NYSE holds a session)."""
    return bool(np.is_busday(_np_day(d), busdaycal=_busdaycal()))


def session_close(d) -> dt.datetime:
    """When trading day `d`'s session closes: 16:00 New York, earlier on early-close days (13:00
    on the day after Thanksgiving). ValueError when `d` is not a trading day."""
    day = to_date(d)
    if not is_trading_day(day):
        raise ValueError(f"{day} ({day:%A}) is not a trading day: there is no session to close")
    regular, early = _closes()
    return dt.datetime.combine(day, early.get(day, regular), tzinfo=NEW_YORK)


def trading_days(start, end) -> list[dt.date]:
    """All trading days from `start` to `end`, both inclusive, ascending (empty if start > end)."""
    lo, hi = _np_day(start), _np_day(end)
    if lo > hi:
        return []
    days = np.arange(lo, hi + np.timedelta64(1, "D"), dtype="datetime64[D]")
    return [d.item() for d in days[np.is_busday(days, busdaycal=_busdaycal())]]


def shift_trading_days(d, n: int) -> dt.date:
    """The trading day `n` trading days after `d` (before, if n < 0).

    When `d` is not a trading day it first rolls to the neighbouring trading day on the side away
    from the shift, so shift(Saturday, +1) is Monday and shift(Saturday, -1) is Friday; with n == 0
    a non-trading day rolls back to the latest trading day before it.
    """
    roll = "forward" if n < 0 else "backward"
    day = np.busday_offset(_np_day(d), int(n), roll=roll, busdaycal=_busdaycal())
    return day.item()


def previous_trading_day(d) -> dt.date:
    """The last trading day strictly before `d`."""
    return shift_trading_days(d, -1)


def _clock(now: dt.datetime | None, zone: ZoneInfo) -> dt.datetime:
    """`now` (default: the current time) on `zone`'s wall clock; a naive `now` is taken as such."""
    if now is None:
        return dt.datetime.now(zone)
    return now.astimezone(zone) if now.tzinfo is not None else now.replace(tzinfo=zone)


def latest_closed_session(now: dt.datetime | None = None) -> dt.date:
    """The most recent trading day whose session has closed at `now`, by that day's real close
    (16:00 New York, 13:00 on early-close days). `now` defaults to the current time; an aware
    datetime is converted to New York, a naive one is taken as New York time."""
    local = _clock(now, NEW_YORK)
    today = local.date()
    if is_trading_day(today) and local >= session_close(today):
        return today
    return previous_trading_day(today)


def latest_trading_day(
    now: dt.datetime | None = None, close_hour: int = 18, tz: str = "America/New_York"
) -> dt.date:
    """The most recent trading day whose session (plus data settling) is over at `now`.

    `now` defaults to the current time; an aware datetime is converted to `tz`, a naive one is
    taken as already in `tz`. Returns today when it is a trading day and the New York clock has
    reached `close_hour`, else the previous trading day. For the session's real close (early
    closes included) use `latest_closed_session`.
    """
    local = _clock(now, ZoneInfo(tz))
    today = local.date()
    if is_trading_day(today) and local.hour >= close_hour:
        return today
    return previous_trading_day(today)


def _roll_to_trading_day(day: dt.date) -> dt.date:
    """An expiry on a market holiday moves to the trading day before it."""
    return np.busday_offset(_np_day(day), 0, roll="backward", busdaycal=_busdaycal()).item()


def third_friday(year: int, month: int) -> dt.date:
    """Third Friday of a month (the standard monthly expiration, before holiday adjustment)."""
    first = dt.date(year, month, 1)
    return first + dt.timedelta(days=(4 - first.weekday()) % 7 + 14)


@lru_cache(maxsize=4096)
def monthly_expiry(year: int, month: int) -> dt.date:
    """Standard monthly expiry: the third Friday, moved earlier when it is a holiday."""
    return _roll_to_trading_day(third_friday(year, month))


def is_monthly_expiry(d) -> bool:
    """True when `d` is the (holiday-adjusted) standard monthly expiry of its month."""
    day = to_date(d)
    return monthly_expiry(day.year, day.month) == day


@lru_cache(maxsize=4096)
def _standard_expiries(day: dt.date, max_years: float) -> tuple[dt.date, ...]:
    horizon = day + dt.timedelta(days=round(365.25 * max_years))
    year_out = day + dt.timedelta(days=366)
    candidates: set[dt.date] = set()
    # weeklies: the next six Fridays
    friday = day + dt.timedelta(days=(4 - day.weekday()) % 7 or 7)
    for week in range(6):
        candidates.add(friday + dt.timedelta(weeks=week))
    # monthlies out to a year; quarterlies (Mar/Jun/Sep/Dec) and January LEAPS out to max_years
    for i in range(int(12 * max_years) + 2):
        year, month = day.year + (day.month - 1 + i) // 12, (day.month - 1 + i) % 12 + 1
        expiry = third_friday(year, month)
        if expiry <= year_out or month in (1, 3, 6, 9, 12):
            candidates.add(expiry)
    rolled = {_roll_to_trading_day(e) for e in candidates if e <= horizon}
    return tuple(sorted(e for e in rolled if e > day))


def standard_expiries(d, max_years: float = 2.0) -> list[dt.date]:
    """Listed expiries as of `d`: weekly Fridays for six weeks, monthly third Fridays to a year,
    quarterly and January LEAPS expiries to `max_years`; holiday expiries move to the previous
    trading day; all strictly after `d`, ascending (about 20 for max_years=2)."""
    return list(_standard_expiries(to_date(d), float(max_years)))
