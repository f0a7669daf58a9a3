"""Unit tests of the programme's pure rules (``oscar_loyalty.rules``): no database.

The shop's time zone in the test settings is Asia/Shanghai (UTC+8, no daylight
saving), so an instant late in the UTC evening is already the next day in the shop.
"""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone

from oscar_loyalty import rules

SHANGHAI = ZoneInfo("Asia/Shanghai")


def shop(*args):
    """A moment on the shop's wall clock."""
    return datetime(*args, tzinfo=SHANGHAI)


LAST_MICROSECOND = {"hour": 23, "minute": 59, "second": 59, "microsecond": 999999}


@pytest.fixture(autouse=True)
def shop_in_shanghai(settings):
    settings.TIME_ZONE = "Asia/Shanghai"
    settings.USE_TZ = True


# add_months ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("start", "months", "expected"),
    [
        (shop(2026, 1, 15), 1, shop(2026, 2, 15)),
        (shop(2026, 1, 31), 1, shop(2026, 2, 28)),
        (shop(2028, 1, 31), 1, shop(2028, 2, 29)),
        (shop(2026, 3, 31), 1, shop(2026, 4, 30)),
        (shop(2028, 2, 29), 12, shop(2029, 2, 28)),
        (shop(2028, 2, 29), 48, shop(2032, 2, 29)),
        (shop(2026, 11, 30), 3, shop(2027, 2, 28)),
        (shop(2026, 12, 31), 2, shop(2027, 2, 28)),
        (shop(2026, 5, 31), 0, shop(2026, 5, 31)),
        (shop(2026, 3, 31), -1, shop(2026, 2, 28)),
        (shop(2026, 1, 31), -2, shop(2025, 11, 30)),
    ],
)
def test_adding_months_clamps_to_the_last_day_of_a_shorter_month(
    start, months, expected
):
    assert rules.add_months(start, months) == expected


def test_adding_months_keeps_the_time_of_day_and_the_time_zone():
    start = datetime(2026, 1, 31, 20, 15, 7, 123, tzinfo=SHANGHAI)

    moved = rules.add_months(start, 13)

    assert moved == datetime(2027, 2, 28, 20, 15, 7, 123, tzinfo=SHANGHAI)
    assert moved.tzinfo is SHANGHAI


def test_adding_twelve_months_to_every_day_of_a_leap_year_lands_a_year_later():
    day = shop(2028, 1, 1)
    while day.year == 2028:
        moved = rules.add_months(day, 12)
        assert (moved.year, moved.month) == (2029, day.month)
        assert moved.day == min(day.day, 28 if day.month == 2 else day.day)
        day += timedelta(days=1)


# expiry_for ---------------------------------------------------------------------------

# Confirmed at 20:00 UTC on 31 January: in the shop it is already 04:00 on 1 February.
CONFIRMED = datetime(2026, 1, 31, 20, 0, tzinfo=UTC)


def test_without_rounding_points_expire_the_same_moment_months_later_in_shop_time():
    expires = rules.expiry_for(CONFIRMED, months=12, rounding="none")

    assert expires == datetime(2027, 2, 1, 4, 0, tzinfo=SHANGHAI)
    assert expires == datetime(2027, 1, 31, 20, 0, tzinfo=UTC)


def test_month_end_rounding_uses_the_shop_calendar_not_utc():
    # The shop confirmed these points in February, so they last to the end of
    # February a year later: not to the end of January, as a UTC calendar would say.
    expires = rules.expiry_for(CONFIRMED, months=12, rounding="month_end")

    assert expires == datetime(2027, 2, 28, **LAST_MICROSECOND, tzinfo=SHANGHAI)
    assert timezone.localtime(expires).date().isoformat() == "2027-02-28"


def test_month_end_rounding_reaches_the_29th_of_february_in_a_leap_year():
    confirmed = datetime(2027, 2, 3, 9, 0, tzinfo=SHANGHAI)

    expires = rules.expiry_for(confirmed, months=12, rounding="month_end")

    assert expires == datetime(2028, 2, 29, **LAST_MICROSECOND, tzinfo=SHANGHAI)


def test_year_end_rounding_lasts_to_the_shops_new_year_eve():
    expires = rules.expiry_for(CONFIRMED, months=12, rounding="year_end")

    assert expires == datetime(2027, 12, 31, **LAST_MICROSECOND, tzinfo=SHANGHAI)
    assert expires == datetime(2027, 12, 31, 15, 59, 59, 999999, tzinfo=UTC)


def test_year_end_rounding_of_a_utc_new_year_eve_is_the_next_shop_year():
    # 16:30 UTC on 31 December 2026 is 00:30 on 1 January 2027 in Shanghai.
    confirmed = datetime(2026, 12, 31, 16, 30, tzinfo=UTC)

    expires = rules.expiry_for(confirmed, months=0, rounding="year_end")

    assert expires == datetime(2027, 12, 31, **LAST_MICROSECOND, tzinfo=SHANGHAI)


def test_month_end_rounding_in_a_zone_with_summer_time_ends_at_local_midnight(
    settings,
):
    settings.TIME_ZONE = "Europe/Berlin"
    berlin = ZoneInfo("Europe/Berlin")
    # Confirmed in winter (UTC+1), expiring in summer (UTC+2).
    confirmed = datetime(2026, 2, 15, 10, 0, tzinfo=UTC)

    expires = rules.expiry_for(confirmed, months=1, rounding="month_end")

    assert expires == datetime(2026, 3, 31, **LAST_MICROSECOND, tzinfo=berlin)
    assert expires == datetime(2026, 3, 31, 21, 59, 59, 999999, tzinfo=UTC)


def test_rounded_expiry_is_never_before_the_unrounded_one():
    for hours in range(0, 24 * 400, 7):
        confirmed = CONFIRMED + timedelta(hours=hours)
        plain = rules.expiry_for(confirmed, months=12, rounding="none")
        for rounding in ("month_end", "year_end"):
            assert rules.expiry_for(confirmed, months=12, rounding=rounding) >= plain


# Reading the policy may ask the database (the owner may have changed it there).
@pytest.mark.django_db
def test_the_policy_comes_from_the_settings_at_call_time(settings):
    settings.OSCAR_LOYALTY_EXPIRY_MONTHS = 6
    settings.OSCAR_LOYALTY_EXPIRY_ROUNDING = "month_end"

    expires = rules.expiry_for(CONFIRMED)

    assert expires == datetime(2026, 8, 31, **LAST_MICROSECOND, tzinfo=SHANGHAI)


# Reading the policy may ask the database (the owner may have changed it there).
@pytest.mark.django_db
def test_the_default_policy_is_twelve_months_without_rounding(settings):
    for name in ("OSCAR_LOYALTY_EXPIRY_MONTHS", "OSCAR_LOYALTY_EXPIRY_ROUNDING"):
        if hasattr(settings, name):
            delattr(settings, name)

    assert rules.expiry_for(CONFIRMED) == datetime(2027, 1, 31, 20, 0, tzinfo=UTC)


def test_expiry_is_computed_in_the_shops_time_zone_whatever_zone_is_active():
    with timezone.override(ZoneInfo("America/New_York")):
        expires = rules.expiry_for(CONFIRMED, months=12, rounding="month_end")

    assert expires == datetime(2027, 2, 28, **LAST_MICROSECOND, tzinfo=SHANGHAI)


# validate_points ----------------------------------------------------------------------


@pytest.mark.parametrize("points", [1, 10, 2**40])
def test_a_positive_whole_number_of_points_is_accepted(points):
    assert rules.validate_points(points) == points


@pytest.mark.parametrize(
    "points",
    [0, -5, 1.5, 10.0, "10", True, False, None, [10]],
    ids=repr,
)
def test_anything_but_a_positive_whole_number_of_points_is_refused(points):
    with pytest.raises(ValueError):
        rules.validate_points(points)
