"""NYSE trading calendar (exchange_calendars' XNYS) and the listed-expiry set."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
from zoneinfo import ZoneInfo

import pytest

from pipeline.config import REPO_ROOT
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


def test_the_synthetic_markets_years_keep_their_holidays():
    """The synthetic market walks trading days from 2024-01-02: these pin its calendar."""
    assert cal.holidays("2024-01-01", "2024-12-31") == [
        D(2024, 1, 1), D(2024, 1, 15), D(2024, 2, 19), D(2024, 3, 29), D(2024, 5, 27),
        D(2024, 6, 19), D(2024, 7, 4), D(2024, 9, 2), D(2024, 11, 28), D(2024, 12, 25),
    ]  # fmt: skip
    assert cal.holidays("2027-01-01", "2027-12-31") == [
        D(2027, 1, 1), D(2027, 1, 18), D(2027, 2, 15), D(2027, 3, 26), D(2027, 5, 31),
        D(2027, 6, 18), D(2027, 7, 5), D(2027, 9, 6), D(2027, 11, 25), D(2027, 12, 24),
    ]  # fmt: skip
    assert len(cal.trading_days("2024-01-01", "2027-12-31")) == 1004


@pytest.mark.parametrize(
    ("day", "trading"),
    [
        (D(1995, 1, 16), True),  # Martin Luther King Jr. Day: the NYSE closes for it from 1998
        (D(1998, 1, 19), False),  # ... the first one it observed
        (D(1994, 4, 27), False),  # national day of mourning (President Nixon)
        (D(2001, 9, 10), True),
        (D(2001, 9, 11), False),  # 9/11: closed Tuesday to Friday
        (D(2001, 9, 12), False),
        (D(2001, 9, 13), False),
        (D(2001, 9, 14), False),
        (D(2001, 9, 17), True),  # reopened the Monday after
        (D(2004, 6, 11), False),  # national day of mourning (President Reagan)
        (D(2007, 1, 2), False),  # national day of mourning (President Ford)
        (D(2012, 10, 29), False),  # Hurricane Sandy
        (D(2012, 10, 30), False),
        (D(2018, 12, 5), False),  # national day of mourning (President G. H. W. Bush)
        (D(2025, 1, 9), False),  # national day of mourning (President Carter)
    ],
)
def test_history_follows_the_nyse(day, trading):
    assert cal.is_trading_day(day) is trading


def test_early_closes_are_trading_days_with_their_own_close():
    assert cal.early_closes("2025-01-01", "2025-12-31") == [
        D(2025, 7, 3), D(2025, 11, 28), D(2025, 12, 24)
    ]  # fmt: skip
    day_after_thanksgiving = D(2026, 11, 27)
    assert cal.is_trading_day(day_after_thanksgiving)
    assert cal.session_close(day_after_thanksgiving) == dt.datetime(2026, 11, 27, 13, 0, tzinfo=NY)
    assert cal.session_close("2026-11-25") == dt.datetime(2026, 11, 25, 16, 0, tzinfo=NY)
    assert cal.session_close("2026-12-24").hour == 13
    # summer time: 16:00 EDT is 20:00 UTC
    assert cal.session_close("2026-07-02").astimezone(dt.UTC).hour == 20
    with pytest.raises(ValueError, match=r"2026-11-26 \(Thursday\) is not a trading day"):
        cal.session_close("2026-11-26")


def test_latest_closed_session_uses_the_days_real_close():
    at = lambda *a: dt.datetime(*a, tzinfo=NY)  # noqa: E731
    assert cal.latest_closed_session(at(2026, 11, 27, 13, 0)) == D(2026, 11, 27)  # early close
    assert cal.latest_closed_session(at(2026, 11, 27, 12, 59)) == D(2026, 11, 25)
    assert cal.latest_closed_session(at(2026, 11, 25, 15, 59)) == D(2026, 11, 24)
    assert cal.latest_closed_session(at(2026, 11, 25, 16, 0)) == D(2026, 11, 25)
    assert cal.latest_closed_session(at(2026, 11, 26, 20, 0)) == D(2026, 11, 25)  # Thanksgiving
    # 18:30 UTC on 27 November is 13:30 EST; a naive time is New York's
    assert cal.latest_closed_session(dt.datetime(2026, 11, 27, 18, 30, tzinfo=dt.UTC)) == D(
        2026, 11, 27
    )
    assert cal.latest_closed_session(dt.datetime(2026, 11, 27, 12, 0)) == D(2026, 11, 25)


def test_the_calendar_is_built_without_the_network():
    """exchange_calendars computes XNYS from rules it ships: a process with sockets disabled
    builds it and answers."""
    code = (
        "import socket\n"
        "def refuse(*args, **kwargs):\n"
        "    raise OSError('network access attempted')\n"
        "socket.socket.connect = socket.socket.connect_ex = refuse\n"
        "socket.getaddrinfo = socket.create_connection = refuse\n"
        "from pipeline.market import calendar as cal\n"
        "print(cal.is_trading_day('2001-09-11'), cal.session_close('2026-11-27').hour)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "13"]


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
    with pytest.raises(ValueError, match="outside the calendar"):
        cal.session_close("2099-01-02")
