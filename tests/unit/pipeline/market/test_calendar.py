"""NYSE trading calendar and the listed-expiry set."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from pipeline.market import calendar as cal

D = dt.date
NY = ZoneInfo("America/New_York")


def test_holidays_2025_2026_match_the_nyse_schedule():
    expected = [
        D(2025, 1, 1), D(2025, 1, 9), D(2025, 1, 20), D(2025, 2, 17), D(2025, 4, 18),
        D(2025, 5, 26), D(2025, 6, 19), D(2025, 7, 4), D(2025, 9, 1), D(2025, 11, 27),
        D(2025, 12, 25),
        D(2026, 1, 1), D(2026, 1, 19), D(2026, 2, 16), D(2026, 4, 3), D(2026, 5, 25),
        D(2026, 6, 19), D(2026, 7, 3), D(2026, 9, 7), D(2026, 11, 26), D(2026, 12, 25),
    ]  # fmt: skip
    assert cal.holidays("2025-01-01", "2026-12-31") == expected
    for day in expected:
        assert not cal.is_trading_day(day)
    assert cal.is_trading_day("2026-07-02") and not cal.is_trading_day(D(2026, 7, 4))


@pytest.mark.parametrize(
    ("day", "trading"),
    [
        (D(2021, 12, 31), True),  # New Year 2022 is a Saturday: NYSE does not close the Friday
        (D(2027, 12, 31), True),  # same for 2028
        (D(2021, 6, 18), True),  # Juneteenth only from 2022
        (D(2022, 6, 20), False),  # Juneteenth 2022 (Sunday) observed Monday
        (D(2022, 12, 26), False),  # Christmas on a Sunday → Monday
        (D(2021, 12, 24), False),  # Christmas on a Saturday → Friday
        (D(2023, 1, 2), False),  # New Year on a Sunday → Monday
        (D(2026, 11, 27), True),  # day after Thanksgiving (early close) trades
        (D(2026, 3, 7), False),  # Saturday
    ],
)
def test_weekend_observance(day, trading):
    assert cal.is_trading_day(day) is trading


def test_trading_days_inclusive_and_ordered():
    days = cal.trading_days("2026-01-01", "2026-12-31")
    assert len(days) == 261 - 10  # weekdays minus ten weekday holidays
    assert days[0] == D(2026, 1, 2) and days[-1] == D(2026, 12, 31)
    assert days == sorted(days) and all(isinstance(d, dt.date) for d in days)
    assert cal.trading_days("2026-04-02", "2026-04-06") == [D(2026, 4, 2), D(2026, 4, 6)]
    assert cal.trading_days("2026-04-06", "2026-04-02") == []


def test_shift_and_previous_trading_day():
    assert cal.shift_trading_days("2026-04-02", 1) == D(2026, 4, 6)  # over Good Friday
    assert cal.shift_trading_days(D(2026, 4, 6), -1) == D(2026, 4, 2)
    assert cal.shift_trading_days(D(2026, 4, 4), 1) == D(2026, 4, 6)  # Saturday rolls back first
    assert cal.shift_trading_days(D(2026, 4, 4), -1) == D(2026, 4, 2)
    assert cal.shift_trading_days(D(2026, 4, 4), 0) == D(2026, 4, 2)
    assert cal.shift_trading_days(D(2026, 4, 2), 0) == D(2026, 4, 2)
    start = D(2026, 3, 2)
    assert cal.shift_trading_days(cal.shift_trading_days(start, 45), -45) == start
    assert cal.shift_trading_days(start, 20) == cal.trading_days(start, "2026-12-31")[20]
    assert cal.previous_trading_day("2026-01-02") == D(2025, 12, 31)
    assert cal.previous_trading_day(D(2026, 7, 6)) == D(2026, 7, 2)
    assert cal.previous_trading_day(D(2026, 11, 27)) == D(2026, 11, 25)


def test_latest_trading_day():
    at = lambda *a: dt.datetime(*a, tzinfo=NY)  # noqa: E731
    assert cal.latest_trading_day(at(2026, 7, 2, 19, 0)) == D(2026, 7, 2)
    assert cal.latest_trading_day(at(2026, 7, 2, 17, 59)) == D(2026, 7, 1)
    assert cal.latest_trading_day(at(2026, 7, 3, 20, 0)) == D(2026, 7, 2)  # holiday
    assert cal.latest_trading_day(at(2026, 7, 5, 12, 0)) == D(2026, 7, 2)  # Sunday
    assert cal.latest_trading_day(at(2026, 7, 2, 17, 0), close_hour=16) == D(2026, 7, 2)
    # aware times convert to New York: 23:30 UTC is 19:30 EDT, 21:00 UTC is 17:00 EDT
    utc = dt.UTC
    assert cal.latest_trading_day(dt.datetime(2026, 7, 2, 23, 30, tzinfo=utc)) == D(2026, 7, 2)
    assert cal.latest_trading_day(dt.datetime(2026, 7, 2, 21, 0, tzinfo=utc)) == D(2026, 7, 1)
    assert cal.latest_trading_day(dt.datetime(2026, 7, 2, 19, 0)) == D(2026, 7, 2)  # naive = NY
    assert cal.is_trading_day(cal.latest_trading_day())


@pytest.mark.parametrize("day", [D(2025, 1, 2) + dt.timedelta(days=9 * i) for i in range(80)])
def test_standard_expiries_shape(day):
    expiries = cal.standard_expiries(day, 2.0)
    assert 15 <= len(expiries) <= 25
    assert expiries == sorted(set(expiries))
    assert all(e > day and cal.is_trading_day(e) for e in expiries)
    assert expiries[-1] <= day + dt.timedelta(days=round(2 * 365.25))
    weekly = [e for e in expiries if e <= day + dt.timedelta(weeks=6)]
    assert len(weekly) >= 5  # a Friday expiry (or its holiday Thursday) every week
    assert all(abs((b - a).days - 7) <= 1 for a, b in zip(weekly, weekly[1:], strict=False))
    monthly = {(e.year, e.month) for e in expiries if cal.is_monthly_expiry(e)}
    months_ahead = [
        ((day.month - 1 + i) // 12 + day.year, (day.month - 1 + i) % 12 + 1) for i in range(1, 12)
    ]
    assert set(months_ahead) <= monthly
    assert any(e.month == 1 and (e - day).days > 300 for e in expiries)  # January LEAPS


def test_standard_expiries_holidays_and_horizon():
    before_good_friday = cal.standard_expiries("2026-03-27", 2.0)
    assert D(2026, 4, 2) in before_good_friday and D(2026, 4, 3) not in before_good_friday
    assert D(2026, 6, 18) in before_good_friday  # June 2026 third Friday is Juneteenth
    assert cal.monthly_expiry(2026, 6) == D(2026, 6, 18)
    assert cal.is_monthly_expiry("2026-06-18") and not cal.is_monthly_expiry("2026-06-19")
    # an expiry on the date itself is not listed any more
    assert D(2026, 3, 20) not in cal.standard_expiries("2026-03-20", 2.0)
    short = cal.standard_expiries("2026-03-02", 0.5)
    assert short[-1] <= D(2026, 9, 1) and len(short) < len(cal.standard_expiries("2026-03-02", 2.0))
    assert len(cal.standard_expiries("2026-03-02", 3.0)) > len(
        cal.standard_expiries("2026-03-02", 2.0)
    )


def test_inputs_and_range():
    assert cal.to_date("2026-03-02") == cal.to_date(dt.datetime(2026, 3, 2, 15)) == D(2026, 3, 2)
    with pytest.raises(ValueError, match="outside the calendar"):
        cal.is_trading_day("1980-01-02")
