"""US equity-options trading calendar (NYSE holidays) and a realistic listed-expiry set.

Holidays follow NYSE rules via `pandas.tseries.holiday`: New Year's Day (a Sunday moves to Monday;
a Saturday is *not* observed on the Friday before), Martin Luther King Jr. Day, Presidents' Day,
Good Friday, Memorial Day, Juneteenth (from 2022), Independence Day, Labor Day, Thanksgiving and
Christmas (Saturday → Friday, Sunday → Monday), plus the few unscheduled full-day closures listed
in `SPECIAL_CLOSURES`. Early closes (half days) are trading days.

Every function takes a `datetime.date`, a `datetime.datetime` (its date is used), a
`pandas.Timestamp`, or a string 'YYYY-MM-DD', and returns `datetime.date` values. The holiday table
covers `CALENDAR_START`..`CALENDAR_END` and is built once per process; lookups use NumPy's
business-day routines, so they cost microseconds.
"""

from __future__ import annotations

import datetime as dt
from functools import lru_cache
from zoneinfo import ZoneInfo

import numpy as np
import pandas as pd
from pandas.tseries.holiday import (
    AbstractHolidayCalendar,
    GoodFriday,
    Holiday,
    USLaborDay,
    USMartinLutherKingJr,
    USMemorialDay,
    USPresidentsDay,
    USThanksgivingDay,
    nearest_workday,
    sunday_to_monday,
)

CALENDAR_START = dt.date(1990, 1, 1)
CALENDAR_END = dt.date(2099, 12, 31)
# Unscheduled full-day closures (national days of mourning, Hurricane Sandy).
SPECIAL_CLOSURES = (
    dt.date(2004, 6, 11),
    dt.date(2007, 1, 2),
    dt.date(2012, 10, 29),
    dt.date(2012, 10, 30),
    dt.date(2018, 12, 5),
    dt.date(2025, 1, 9),
)


class NYSEHolidayCalendar(AbstractHolidayCalendar):
    """Scheduled NYSE full-day holidays with weekend observance."""

    rules = [
        Holiday("New Year's Day", month=1, day=1, observance=sunday_to_monday),
        USMartinLutherKingJr,
        USPresidentsDay,
        GoodFriday,
        USMemorialDay,
        Holiday("Juneteenth", month=6, day=19, start_date="2022-01-01", observance=nearest_workday),
        Holiday("Independence Day", month=7, day=4, observance=nearest_workday),
        USLaborDay,
        USThanksgivingDay,
        Holiday("Christmas Day", month=12, day=25, observance=nearest_workday),
    ]


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
def _busdaycal() -> np.busdaycalendar:
    scheduled = NYSEHolidayCalendar().holidays(CALENDAR_START, CALENDAR_END)
    days = sorted({d.date() for d in scheduled} | set(SPECIAL_CLOSURES))
    return np.busdaycalendar(weekmask="1111100", holidays=np.array(days, dtype="datetime64[D]"))


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


def is_trading_day(d) -> bool:
    """True when US equity options trade on `d` (a weekday that is not an NYSE holiday)."""
    return bool(np.is_busday(_np_day(d), busdaycal=_busdaycal()))


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


def latest_trading_day(
    now: dt.datetime | None = None, close_hour: int = 18, tz: str = "America/New_York"
) -> dt.date:
    """The most recent trading day whose session (plus data settling) is over at `now`.

    `now` defaults to the current time; an aware datetime is converted to `tz`, a naive one is
    taken as already in `tz`. Returns today when it is a trading day and the New York clock has
    reached `close_hour`, else the previous trading day.
    """
    zone = ZoneInfo(tz)
    local = dt.datetime.now(zone) if now is None else now
    if local.tzinfo is not None:
        local = local.astimezone(zone)
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
