"""The programme's periodic jobs as a Celery beat schedule a shop starts from.

In the project's settings::

    from oscar_loyalty.schedule import loyalty_beat_schedule

    CELERY_BEAT_SCHEDULE = {
        **loyalty_beat_schedule(
            # change an entry's timing, or leave one out
            overrides={"loyalty-review-tiers": crontab(hour=2, minute=0)},
            exclude=["loyalty-purge-voucher-attempts"],
        ),
        # ... the shop's own entries
    }

Times are in ``CELERY_TIMEZONE`` (set it to ``TIME_ZONE``). Every task is safe
to run twice (a double beat, or a message delivered again after a worker was
lost): each one's work is keyed, locked or checked before it is done. With
django-celery-beat's database scheduler the same entries are copied into its
tables on the first start, and are changed in Django's admin from then on.
"""

from celery.schedules import crontab, schedule

#: name -> (task, when, what it does)
JOBS = {
    "loyalty-expire-points": (
        "oscar_loyalty.expire_points",
        crontab(minute=5),
        "hourly: points past their expiry date expire, oldest first",
    ),
    "loyalty-release-stale-holds": (
        "oscar_loyalty.release_stale_holds",
        crontab(minute="*/5"),
        "points held for a basket that never became an order go back",
    ),
    "loyalty-award-missed-orders": (
        "oscar_loyalty.award_missed_orders",
        crontab(minute=30),
        "hourly: orders whose order_placed receiver failed earn their points",
    ),
    "loyalty-follow-missed-status-changes": (
        "oscar_loyalty.follow_missed_status_changes",
        crontab(minute=40),
        "hourly: orders whose status receiver failed are confirmed or reversed",
    ),
    "loyalty-confirm-returned-points": (
        "oscar_loyalty.confirm_returned_points",
        crontab(minute=45),
        "hourly: pending points past the return window become spendable "
        "(only with OSCAR_LOYALTY_CONFIRM_AFTER_DAYS)",
    ),
    "loyalty-review-tiers": (
        "oscar_loyalty.review_tiers",
        crontab(hour=3, minute=15),
        "daily, at night: tier downgrades after the grace period, catch-up upgrades",
    ),
    "loyalty-birthday-coupons": (
        "oscar_loyalty.issue_birthday_coupons",
        crontab(hour=6, minute=0),
        "daily, early: the day's birthday coupons",
    ),
    "loyalty-birthday-points": (
        "oscar_loyalty.reward_birthday_points",
        crontab(hour=6, minute=5),
        "daily, early: the day's birthday points",
    ),
    "loyalty-remind-expiring-points": (
        "oscar_loyalty.remind_expiring_points",
        crontab(hour=10, minute=0),
        "daily, in the morning: reminders before points expire",
    ),
    "loyalty-issue-campaign-coupons": (
        "oscar_loyalty.issue_campaign_coupons",
        crontab(minute="*/15"),
        "campaigns that started hand out their coupons",
    ),
    "loyalty-refund-unused-rewards": (
        "oscar_loyalty.refund_unused_rewards",
        crontab(hour=4, minute=30),
        "daily: points back for reward coupons that expired unused",
    ),
    "loyalty-reward-referrals": (
        "oscar_loyalty.reward_confirmed_referrals",
        crontab(minute=20),
        "hourly: referrals whose first order is confirmed are rewarded",
    ),
    "loyalty-purge-voucher-attempts": (
        "oscar_loyalty.purge_voucher_attempts",
        crontab(minute=50),
        "hourly: counters of ended voucher-attempt windows are deleted",
    ),
    "loyalty-score-members": (
        "oscar_loyalty.score_members",
        crontab(hour=3, minute=45),
        "nightly: members who agreed to profiling get their activity and value "
        "segments",
    ),
    "loyalty-forget-import-files": (
        "oscar_loyalty.forget_import_files",
        crontab(hour=4, minute=15),
        "daily: customers' data in members files not imported is deleted after "
        "OSCAR_LOYALTY_IMPORT_KEEP_DAYS",
    ),
}


def loyalty_beat_schedule(*, overrides=None, exclude=()):
    """``CELERY_BEAT_SCHEDULE`` entries for every periodic job of the programme.

    ``overrides`` maps an entry's name to another ``crontab``/``schedule`` (or a
    number of seconds); ``exclude`` names entries to leave out. A name that is
    not an entry is an error, so a typo does not leave a job on its old time.
    """
    overrides = dict(overrides or {})
    unknown = (set(overrides) | set(exclude)) - set(JOBS)
    if unknown:
        raise ValueError(
            f"Not entries of the loyalty schedule: {', '.join(sorted(unknown))}; "
            f"the entries are {', '.join(JOBS)}."
        )
    entries = {}
    for name, (task, when, _what) in JOBS.items():
        if name in exclude:
            continue
        when = overrides.get(name, when)
        if isinstance(when, (int, float)):
            when = schedule(when)
        entries[name] = {"task": task, "schedule": when}
    return entries
