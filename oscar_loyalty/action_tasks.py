"""Celery tasks of action rewards and referrals: thin wrappers, safe to run twice.

Schedule both daily with Celery beat (``CELERY_TIMEZONE`` = ``TIME_ZONE``): the
birthday run early in the morning, the referral sweep at any hour (or more often:
it only reads the pending referrals whose first order is confirmed).
"""

from datetime import date

from celery import shared_task
from django.utils.dateparse import parse_datetime

from .services import actions, referrals
from .tasks import RUN_AGAIN_IF_LOST


@shared_task(name="oscar_loyalty.reward_birthday_points", **RUN_AGAIN_IF_LOST)
def reward_birthday_points(today=None):
    """Daily: birthday points of the day (and yesterday's, if that run was
    missed); once per member and year."""
    return actions.reward_birthday_points(
        today=date.fromisoformat(today) if today else None
    )


@shared_task(name="oscar_loyalty.reward_confirmed_referrals", **RUN_AGAIN_IF_LOST)
def reward_confirmed_referrals(now=None):
    """Reward (or refuse) the referrals whose new member's first order is
    confirmed; returns ``{"rewarded": n, "refused": n}``."""
    return referrals.reward_confirmed_referrals(
        now=parse_datetime(now) if now else None
    )
