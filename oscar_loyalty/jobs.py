"""Set-based batch jobs over the ledger, run by the Celery tasks.

Each job works on a primary-key range so many tasks can share a large table, locks
the members it touches in primary-key order, and is idempotent by construction
(status guards and unique posting keys): safe on several workers and a double beat.
"""

from django.db import transaction
from django.db.models import F, OuterRef, Subquery, Sum
from django.utils import timezone

from .models import Entry, Hold, Lot, Member, Posting

#: Lots written per statement: well within every database's parameter limit.
WRITE_BATCH = 5_000


def expire_lots(*, now=None, start_id=None, end_id=None):
    """Expire active lots past their date in the lot-id range [start_id, end_id).

    Set-based: members locked in primary-key order by one statement, then per
    batch of lots one statement lowers the balances, two insert a posting and an
    entry per lot, and one closes the lots. Members with points held at checkout
    are left for the next run (their hold is captured or released within
    ``OSCAR_LOYALTY_HOLD_TIMEOUT_MINUTES``), so expiry never breaks a checkout.
    Idempotent: an expired lot is no longer active and posting keys are unique.
    Returns the number of lots expired.
    """
    now = now or timezone.now()
    due = Lot.objects.filter(
        status=Lot.Status.ACTIVE, remaining__gt=0, expires_at__lte=now
    )
    if start_id is not None:
        due = due.filter(id__gte=start_id)
    if end_id is not None:
        due = due.filter(id__lt=end_id)
    with transaction.atomic():
        # Lock every member with due lots, held or not: the choice made next
        # (members holding nothing) cannot change until the transaction ends.
        locked = set(
            Member.objects.select_for_update()
            .filter(pk__in=due.values("member_id"))
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        # A lot that fell due after the lock (say, points restored with a past
        # expiry date) belongs to a member not locked here: the next run takes it.
        lots = [
            row
            for row in due.filter(member__held=0).values_list(
                "id", "member_id", "remaining"
            )
            if row[1] in locked
        ]
        for start in range(0, len(lots), WRITE_BATCH):
            _expire_batch(lots[start : start + WRITE_BATCH], now)
    return len(lots)


def _expire_batch(lots, now):
    """Post and apply the expiry of ``lots``: (id, member_id, remaining) rows."""
    lot_ids = [lot_id for lot_id, _, _ in lots]
    per_member = (
        Lot.objects.filter(id__in=lot_ids, member_id=OuterRef("pk"))
        .values("member_id")
        .annotate(total=Sum("remaining"))
        .values("total")
    )
    Member.objects.filter(pk__in={member_id for _, member_id, _ in lots}).update(
        available=F("available") - Subquery(per_member)
    )
    postings = Posting.objects.bulk_create(
        [
            Posting(
                key=f"expire:{lot_id}",
                kind=Posting.Kind.EXPIRE,
                member_id=member_id,
                created_at=now,
            )
            for lot_id, member_id, _ in lots
        ]
    )
    Entry.objects.bulk_create(
        [
            Entry(
                posting=posting,
                member_id=member_id,
                lot_id=lot_id,
                available_change=-remaining,
            )
            for posting, (lot_id, member_id, remaining) in zip(
                postings, lots, strict=True
            )
        ]
    )
    Lot.objects.filter(id__in=lot_ids).update(status=Lot.Status.EXPIRED, remaining=0)


@transaction.atomic
def release_stale_holds(*, now=None):
    """Release every hold past its timeout, set-based; returns how many."""
    now = now or timezone.now()
    stale = Hold.objects.filter(status=Hold.Status.ACTIVE, expires_at__lte=now)
    list(
        Member.objects.select_for_update()
        .filter(pk__in=stale.values("member_id"))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    per_member = (
        stale.filter(member_id=OuterRef("pk"))
        .values("member_id")
        .annotate(total=Sum("points"))
        .values("total")
    )
    Member.objects.filter(pk__in=stale.values("member_id")).update(
        held=F("held") - Subquery(per_member)
    )
    return stale.update(status=Hold.Status.RELEASED, closed_at=now)
