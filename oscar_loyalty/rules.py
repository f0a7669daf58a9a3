"""Pure calculations of the programme's rules: no ORM, unit-testable on their own."""

import calendar
from datetime import datetime

from django.utils import timezone

from .conf import loyalty_settings

EXPIRY_ROUNDINGS = ("none", "month_end", "year_end")


def add_months(moment: datetime, months: int) -> datetime:
    """``moment`` plus whole calendar months, clamped to the target month's last day."""
    month_index = moment.month - 1 + months
    year, month = moment.year + month_index // 12, month_index % 12 + 1
    day = min(moment.day, calendar.monthrange(year, month)[1])
    return moment.replace(year=year, month=month, day=day)


def expiry_for(confirmed_at: datetime, *, months=None, rounding=None) -> datetime:
    """When points confirmed at ``confirmed_at`` expire, by the owner's policy.

    ``months`` after confirmation (``OSCAR_LOYALTY_EXPIRY_MONTHS``), then rounded up
    to the end of that month or year (``OSCAR_LOYALTY_EXPIRY_ROUNDING``): the last
    microsecond of the period in the shop's time zone (``TIME_ZONE``).
    """
    months = loyalty_settings.EXPIRY_MONTHS if months is None else months
    rounding = loyalty_settings.EXPIRY_ROUNDING if rounding is None else rounding
    shop_zone = timezone.get_default_timezone()
    moment = add_months(timezone.localtime(confirmed_at, shop_zone), months)
    if rounding == "month_end":
        last_day = calendar.monthrange(moment.year, moment.month)[1]
        moment = moment.replace(day=last_day)
    elif rounding == "year_end":
        moment = moment.replace(month=12, day=31)
    if rounding in ("month_end", "year_end"):
        moment = moment.replace(hour=23, minute=59, second=59, microsecond=999999)
    return moment


TIER_BASES = ("spend", "points", "orders")
TIER_WINDOWS = ("rolling", "calendar_year")


def tier_window_start(now: datetime, *, window=None, months=None) -> datetime:
    """The start of the qualifying window ending ``now``.

    Rolling: ``months`` calendar months before ``now``
    (``OSCAR_LOYALTY_TIER_WINDOW_MONTHS``); calendar year: 1 January of ``now``'s
    year, midnight in the shop's time zone.
    """
    window = loyalty_settings.TIER_WINDOW if window is None else window
    if window == "calendar_year":
        local = timezone.localtime(now, timezone.get_default_timezone())
        return local.replace(month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    months = loyalty_settings.TIER_WINDOW_MONTHS if months is None else months
    return add_months(now, -months)


def validate_points(value) -> int:
    """``value`` as a positive integer number of points, or ``ValueError``.

    Booleans, fractions, text and non-positive numbers are refused: a form value is
    never trusted to be what it claims.
    """
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(value)
    return value
