"""Celery tasks: thin wrappers around services and jobs, safe to run twice.

Schedule them with Celery beat (see the README); with ``CELERY_TASK_ALWAYS_EAGER``
they run in the calling process.
"""

from datetime import timedelta

from celery import shared_task
from django.db.models import Exists, F, Max, Min, OuterRef
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from oscar.core.loading import get_model

from . import jobs
from .conf import loyalty_settings
from .models import Lot, Member, OrderActivity, Posting
from .services import orders

#: Every task here is safe to run twice (its work is keyed, locked or checked
#: first), so each message is acknowledged only once its task has run, and goes
#: back to the queue when the worker running it dies (killed, out of memory):
#: another worker does it again instead of it being lost.
RUN_AGAIN_IF_LOST = {"acks_late": True, "reject_on_worker_lost": True}

# Chunk sizes are settings (OSCAR_LOYALTY_*_CHUNK): lot ids per expiry task,
# large enough to be set-based, small enough to retry; lot ids per return-window
# task; member ids per reminder task (a member's lots stay in one task: one
# e-mail); member ids per tier-review task.


def id_ranges(queryset, field, chunk):
    """[start, end) ranges of ``field`` covering ``queryset``, ``chunk`` ids each.

    One aggregate query; ranges between the smallest and largest id, so a chunk
    may hold fewer rows than ``chunk`` where ids have gaps, never more.
    """
    bounds = queryset.aggregate(low=Min(field), high=Max(field))
    if bounds["low"] is None:
        return []
    return [
        (start, min(start + chunk, bounds["high"] + 1))
        for start in range(bounds["low"], bounds["high"] + 1, chunk)
    ]


@shared_task(name="oscar_loyalty.expire_points", **RUN_AGAIN_IF_LOST)
def expire_points(now=None):
    """Fan the due lots out by id range, one task per chunk (never one per member)."""
    now = parse_datetime(now) if now else timezone.now()
    due = Lot.objects.filter(
        status=Lot.Status.ACTIVE, remaining__gt=0, expires_at__lte=now
    )
    ranges = id_ranges(due, "id", loyalty_settings.EXPIRY_CHUNK)
    for start, end in ranges:
        expire_points_chunk.delay(start, end, now.isoformat())
    return len(ranges)


@shared_task(name="oscar_loyalty.expire_points_chunk", **RUN_AGAIN_IF_LOST)
def expire_points_chunk(start_id, end_id, now):
    return jobs.expire_lots(now=parse_datetime(now), start_id=start_id, end_id=end_id)


@shared_task(name="oscar_loyalty.confirm_returned_points", **RUN_AGAIN_IF_LOST)
def confirm_returned_points(now=None):
    """Fan the pending lots past the return window out by lot-id range.

    Does nothing while ``OSCAR_LOYALTY_CONFIRM_AFTER_DAYS`` is None (only the
    confirm statuses confirm points).
    """
    now = parse_datetime(now) if now else timezone.now()
    due = jobs.returned_lots_due(now)
    if due is None:
        return 0
    ranges = id_ranges(due, "id", loyalty_settings.CONFIRM_CHUNK)
    for start, end in ranges:
        confirm_returned_points_chunk.delay(start, end, now.isoformat())
    return len(ranges)


@shared_task(name="oscar_loyalty.confirm_returned_points_chunk", **RUN_AGAIN_IF_LOST)
def confirm_returned_points_chunk(start_id, end_id, now):
    return jobs.confirm_returned_lots(
        now=parse_datetime(now), start_id=start_id, end_id=end_id
    )


@shared_task(name="oscar_loyalty.remind_expiring_points", **RUN_AGAIN_IF_LOST)
def remind_expiring_points(now=None):
    """Fan the members due an expiry reminder out by member-id range.

    By member, not by lot, so that each member gets one e-mail per run however
    many of their lots are due. Every chunk works with the same ``now``.
    """
    now = parse_datetime(now) if now else timezone.now()
    due = jobs.reminders_due(now)
    if due is None:
        return 0
    ranges = id_ranges(due, "member_id", loyalty_settings.REMINDER_CHUNK)
    for start, end in ranges:
        remind_expiring_points_chunk.delay(start, end, now.isoformat())
    return len(ranges)


@shared_task(name="oscar_loyalty.remind_expiring_points_chunk", **RUN_AGAIN_IF_LOST)
def remind_expiring_points_chunk(start_id, end_id, now):
    return jobs.remind_expiring_lots(
        now=parse_datetime(now), start_id=start_id, end_id=end_id
    )


@shared_task(name="oscar_loyalty.release_stale_holds", **RUN_AGAIN_IF_LOST)
def release_stale_holds():
    return jobs.release_stale_holds()


@shared_task(name="oscar_loyalty.award_missed_orders", **RUN_AGAIN_IF_LOST)
def award_missed_orders(days=3):
    """Award orders of the last ``days`` whose ``order_placed`` receiver failed."""
    Order = get_model("order", "Order")
    earned = Posting.objects.of_order(OuterRef("number")).filter(kind=Posting.Kind.EARN)
    # An order too small to earn points has its activity towards tiers instead.
    recorded = OrderActivity.objects.filter(order_number=OuterRef("number"))
    missed = (
        Order.objects.filter(
            user__isnull=False, date_placed__gte=timezone.now() - timedelta(days=days)
        )
        .exclude(Exists(earned))
        .exclude(Exists(recorded))
        .select_related("user")
    )
    return sum(orders.award_order(order) or 0 for order in missed.iterator(500))


@shared_task(name="oscar_loyalty.follow_missed_status_changes", **RUN_AGAIN_IF_LOST)
def follow_missed_status_changes(days=30):
    """Confirm or reverse the points of recent orders whose status receiver failed.

    Finds, in a few set-based queries, orders of the last ``days`` in a confirm
    status that still have pending lots, and orders in a reverse status with lots
    not taken back or a redemption not given back; then applies the same
    idempotent services the receiver calls. Returns how many orders it fixed.
    """
    Order = get_model("order", "Order")
    since = timezone.now() - timedelta(days=days)
    recent = Order.objects.filter(user__isnull=False, date_placed__gte=since)
    earned = Lot.objects.filter(order_number=OuterRef("number"), source=Lot.Source.EARN)
    activity = OrderActivity.objects.filter(order_number=OuterRef("number"))
    unconfirmed = recent.filter(
        Exists(earned.filter(status=Lot.Status.PENDING))
        | Exists(activity.filter(confirmed_at__isnull=True, cancelled_at__isnull=True)),
        status__in=loyalty_settings.CONFIRM_STATUSES,
    ).values_list("number", flat=True)
    redeemed = Posting.objects.of_order(OuterRef("number")).filter(
        kind=Posting.Kind.REDEEM
    )
    restored = Posting.objects.of_order(OuterRef("number")).filter(
        kind=Posting.Kind.RESTORE
    )
    unreversed = (
        recent.filter(status__in=loyalty_settings.REVERSE_STATUSES)
        .filter(
            Exists(earned.filter(reversed__lt=F("points")))
            | (Exists(redeemed) & ~Exists(restored))
            | Exists(activity.filter(cancelled_at__isnull=True))
        )
        .values_list("number", flat=True)
    )
    fixed = 0
    for number in unconfirmed.iterator(500):
        # A safety net for missed signals: no message per order from here.
        orders.confirm_order(order_number=number, tell=False)
        fixed += 1
    for number in unreversed.iterator(500):
        orders.cancel_order(order_number=number)
        fixed += 1
    return fixed


#: Orders per backfill task (``loyalty_backfill --award-orders --in-workers``).
BACKFILL_CHUNK = 5_000


def backfill_orders(since=None):
    """The orders a backfill awards: customers', not in a reverse status."""
    Order = get_model("order", "Order")
    placed = Order.objects.filter(user__isnull=False).exclude(
        status__in=loyalty_settings.REVERSE_STATUSES
    )
    if since is not None:
        placed = placed.filter(date_placed__gte=since)
    return placed


@shared_task(name="oscar_loyalty.award_orders_range", **RUN_AGAIN_IF_LOST)
def award_orders_range(start_id, end_id, since=None):
    """Award the backfill's orders with ``start_id <= pk < end_id``; the points.

    Idempotent (each line's ``earn:<order>:<line>`` key), so a retried or repeated
    range awards nothing twice.
    """
    since = parse_datetime(since) if since else None
    orders_in_range = backfill_orders(since).filter(pk__gte=start_id, pk__lt=end_id)
    return sum(
        orders.award_order(order, channel=Member.Channel.BACKFILL) or 0
        for order in orders_in_range.select_related("user").order_by("pk").iterator(500)
    )


def backfill_ranges(since=None, chunk=BACKFILL_CHUNK):
    """[start, end) order-id ranges covering the backfill's orders."""
    return id_ranges(backfill_orders(since), "pk", chunk)


@shared_task(name="oscar_loyalty.resync_tier_groups", **RUN_AGAIN_IF_LOST)
def resync_tier_groups():
    from .services import tiers

    tiers.resync_all_groups()


@shared_task(name="oscar_loyalty.review_tiers", **RUN_AGAIN_IF_LOST)
def review_tiers(now=None):
    """The periodic tier review: fans out over member-id ranges; returns the chunks.

    Each chunk reviews at the moment it runs, unless ``now`` (ISO 8601) is given:
    a chunk run minutes after the fan-out then sees the orders confirmed since.
    """
    ranges = id_ranges(Member.objects.all(), "id", loyalty_settings.TIER_REVIEW_CHUNK)
    for start, end in ranges:
        review_tiers_chunk.delay(now, start, end)
    return len(ranges)


@shared_task(name="oscar_loyalty.review_tiers_chunk", **RUN_AGAIN_IF_LOST)
def review_tiers_chunk(now, start_id, end_id):
    from .services import tiers

    moment = parse_datetime(now) if now else None
    result = tiers.review(now=moment, start_id=start_id, end_id=end_id)
    return result.as_tuple()


@shared_task(name="oscar_loyalty.issue_birthday_coupons", **RUN_AGAIN_IF_LOST)
def issue_birthday_coupons(today=None):
    """Daily: the birthday coupons of the day (idempotent per member and year)."""
    from datetime import date

    from .services import coupons

    day = date.fromisoformat(today) if today else None
    return coupons.issue_birthday_coupons(today=day)


@shared_task(name="oscar_loyalty.issue_tier_coupons", **RUN_AGAIN_IF_LOST)
def issue_tier_coupons(start_id, end_id, design_id=None):
    """Tier-exclusive coupons for the members with ``start_id <= pk < end_id`` in
    a design's tier or above (those who have one already are skipped); only
    design ``design_id`` when given."""
    from .services import coupons

    members = Member.objects.filter(pk__gte=start_id, pk__lt=end_id, tier__isnull=False)
    issued = coupons.issue_tier_coupons(
        members.values_list("pk", flat=True), design_id=design_id
    )
    return sum(len(coupon_ids) for coupon_ids in issued.values())


#: Members per tier-coupon task.
TIER_COUPON_CHUNK = 10_000


@shared_task(name="oscar_loyalty.issue_tier_coupons_to_all", **RUN_AGAIN_IF_LOST)
def issue_tier_coupons_to_all(design_id=None):
    """Fan out :func:`issue_tier_coupons` over member-id ranges (a new tier
    design reaching the members already in its tier); returns the chunks."""
    ranges = id_ranges(
        Member.objects.filter(tier__isnull=False), "id", TIER_COUPON_CHUNK
    )
    for start, end in ranges:
        issue_tier_coupons.delay(start, end, design_id)
    return len(ranges)


@shared_task(name="oscar_loyalty.purge_voucher_attempts", **RUN_AGAIN_IF_LOST)
def purge_voucher_attempts():
    """Delete the voucher-attempt counters of ended windows."""
    from .coupons import purge_attempts

    return purge_attempts()


@shared_task(name="oscar_loyalty.refund_unused_rewards", **RUN_AGAIN_IF_LOST)
def refund_unused_rewards():
    """Daily: points back for coupons bought with points that expired unused
    (rewards whose owner chose so)."""
    from .services import rewards

    return rewards.refund_expired()


@shared_task(name="oscar_loyalty.issue_campaign_coupons", **RUN_AGAIN_IF_LOST)
def issue_campaign_coupons():
    """Campaigns that started hand out their coupon to their audience (once)."""
    from . import campaigns

    now = timezone.now()
    return sum(
        campaigns.issue_campaign_coupons(campaign, now=now)
        for campaign in campaigns.campaigns_due_coupons(now).select_related(
            "coupon_design"
        )
    )


@shared_task(name="oscar_loyalty.process_member_import", **RUN_AGAIN_IF_LOST)
def process_member_import(import_id):
    """Check or import an uploaded members file (see ``imports.process``)."""
    from .imports import process

    return process(import_id)


@shared_task(name="oscar_loyalty.send_notifications", acks_late=False)
def send_notifications(event, member_ids, extra=None):
    """Send a programme message to members (see ``notifications.send_event``).

    Not retried when a worker dies: a message sent twice is worse than one missed.
    """
    from .notifications import send_event

    return send_event(event, member_ids, extra)


@shared_task(name="oscar_loyalty.forget_import_files", **RUN_AGAIN_IF_LOST)
def forget_import_files():
    """Daily: delete members files not imported within IMPORT_KEEP_DAYS."""
    from .imports import forget_old_files

    return forget_old_files()


@shared_task(name="oscar_loyalty.score_members", bind=True, **RUN_AGAIN_IF_LOST)
def score_members(self, now=None):
    """The nightly scoring run (one transaction: the ranking needs every member
    at once), then the win-backs it starts; returns how many members were
    scored. A retried task finds the run it wrote and scores nothing twice, and
    picks no one twice."""
    from . import scoring, winback

    now = parse_datetime(now) if now else timezone.now()
    run = scoring.run(now, task_id=self.request.id)
    winback.start(run)
    scoring.thin_history(now)
    return run.members
