"""The only writer of the points ledger.

Every function here follows one discipline, so that concurrent requests, retried
tasks and replayed forms cannot spend a point twice or drive a balance negative:

1. ``transaction.atomic()``;
2. lock the member row (``select_for_update``; several members in primary-key
   order) before reading anything the decision depends on: every write to a member's
   lots, holds and balances holds that lock, so it serialises them;
3. look the posting's idempotency key up: an event already written is returned,
   not written again;
4. check, then write the posting, one entry per lot touched, and the cached balances
   in the same transaction.

Arguments are keyword-only. Points are positive integers; anything else is refused
with :class:`~oscar_loyalty.exceptions.InvalidPoints` before anything is written.
"""

import uuid
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from .. import rules
from ..exceptions import (
    InsufficientPoints,
    InvalidPoints,
    LedgerDrift,
    ReasonRequired,
)
from ..models import Entry, Hold, Lot, Member, Posting

#: How many lots the FIFO walk reads at a time.
LOT_BATCH = 100


@dataclass(frozen=True)
class Actor:
    """Who performs a staff operation, kept as text on the posting."""

    id: int | None
    name: str

    @classmethod
    def from_user(cls, user):
        if user is None or not user.is_authenticated:
            return cls(id=None, name="")
        return cls(id=user.pk, name=user.get_full_name() or user.get_username())


SYSTEM = Actor(id=None, name="")


def valid_points(value):
    try:
        return rules.validate_points(value)
    except ValueError:
        raise InvalidPoints() from None


def lock_member(member_id):
    """The member row, locked until the surrounding transaction ends."""
    return Member.objects.select_for_update().get(pk=member_id)


def lock_members(member_ids):
    """Several member rows, locked in primary-key order (no deadlock between two)."""
    members = Member.objects.select_for_update().filter(pk__in=set(member_ids))
    return {member.pk: member for member in members.order_by("pk")}


def existing_posting(key):
    return Posting.objects.filter(key=key).first()


def save_balances(member):
    member.save(update_fields=["available", "held", "pending", "lifetime_earned"])


def new_posting(member, *, key, kind, actor=SYSTEM, **fields):
    return Posting.objects.create(
        key=key,
        kind=kind,
        member=member,
        actor_id=actor.id,
        actor_name=actor.name[:255],
        **fields,
    )


#: Up to this many lots touched, consume_fifo updates them one statement each.
FEW_LOTS = 2


def consume_fifo(member, posting, points):
    """Take ``points`` from the member's active lots, oldest expiry first.

    Writes one entry per lot touched and returns the points taken (less than asked
    only when the lots run out; callers check the balance first).
    """
    taken = 0
    entries = []
    while taken < points:
        lots = list(
            Lot.objects.filter(
                member=member, status=Lot.Status.ACTIVE, remaining__gt=0
            ).order_by("expires_at", "id")[:LOT_BATCH]
        )
        if not lots:
            break
        touched = []
        for lot in lots:
            take = min(lot.remaining, points - taken)
            lot.remaining -= take
            taken += take
            touched.append(lot)
            entries.append(
                Entry(posting=posting, member=member, lot=lot, available_change=-take)
            )
            if taken == points:
                break
        if len(touched) <= FEW_LOTS:
            # Most redemptions touch one or two lots: a plain UPDATE each is
            # cheaper to build and run than bulk_update's CASE statement.
            for lot in touched:
                Lot.objects.filter(pk=lot.pk).update(remaining=lot.remaining)
        else:
            Lot.objects.bulk_update(touched, ["remaining"])
    Entry.objects.bulk_create(entries)
    return taken


def credit_active_lots(member, posting, credits, *, source, now, order_number=""):
    """New spendable lots of (points, expires_at) under ``posting``, in bulk.

    Adds them to ``member.available`` (the caller saves the balances).
    """
    lots = Lot.objects.bulk_create(
        [
            Lot(
                member=member,
                source=source,
                status=Lot.Status.ACTIVE,
                points=points,
                remaining=points,
                created_at=now,
                confirmed_at=now,
                expires_at=expires_at,
                order_number=order_number,
            )
            for points, expires_at in credits
        ]
    )
    Entry.objects.bulk_create(
        [
            Entry(posting=posting, member=member, lot=lot, available_change=lot.points)
            for lot in lots
        ]
    )
    member.available += sum(lot.points for lot in lots)


# Earning and confirming --------------------------------------------------------


@dataclass(frozen=True)
class Earning:
    """Points to credit as one pending lot, under the posting key ``key``."""

    key: str
    points: int
    order_line_id: int | None = None
    rule: str = ""
    rule_version: int = 0


def write_earnings(member, earnings, *, order_number="", reason="", now):
    """Credit ``earnings`` to a member already locked; returns the points credited.

    One posting, lot and entry per earning not written before (keys already posted
    are skipped), in three bulk inserts whatever their number.
    """
    done = set(
        Posting.objects.filter(key__in=[earning.key for earning in earnings])
        .order_by()
        .values_list("key", flat=True)
    )
    todo = [earning for earning in earnings if earning.key not in done]
    if not todo:
        return 0
    lots = Lot.objects.bulk_create(
        [
            Lot(
                member=member,
                source=Lot.Source.EARN,
                status=Lot.Status.PENDING,
                points=earning.points,
                remaining=earning.points,
                created_at=now,
                order_number=order_number,
                order_line_id=earning.order_line_id,
                rule=earning.rule,
                rule_version=earning.rule_version,
            )
            for earning in todo
        ]
    )
    postings = Posting.objects.bulk_create(
        [
            Posting(
                key=earning.key,
                kind=Posting.Kind.EARN,
                member=member,
                created_at=now,
                order_number=order_number,
                reason=reason,
            )
            for earning in todo
        ]
    )
    Entry.objects.bulk_create(
        [
            Entry(posting=posting, member=member, lot=lot, pending_change=lot.points)
            for posting, lot in zip(postings, lots, strict=True)
        ]
    )
    total = sum(lot.points for lot in lots)
    member.pending += total
    member.lifetime_earned += total
    save_balances(member)
    return total


@transaction.atomic
def earn(
    *,
    member,
    key,
    points,
    order_number="",
    order_line_id=None,
    rule="",
    rule_version=0,
    reason="",
    now=None,
):
    """Credit ``points`` as a pending lot (visible at once, not yet spendable)."""
    points = valid_points(points)
    member = lock_member(member.pk)
    earning = Earning(key, points, order_line_id, rule, rule_version)
    write_earnings(
        member,
        [earning],
        order_number=order_number,
        reason=reason,
        now=now or timezone.now(),
    )
    return Posting.objects.get(key=key)


@transaction.atomic
def award(*, member, points, key, reason="", now=None):
    """Credit points a member earned by an action (check-in, review, referral…):
    spendable at once, with the usual expiry, counted as earned. Idempotent by
    ``key``; returns the posting."""
    points = valid_points(points)
    member = lock_member(member.pk)
    if posting := existing_posting(key):
        return posting
    now = now or timezone.now()
    posting = new_posting(
        member, key=key, kind=Posting.Kind.EARN, created_at=now, reason=reason[:255]
    )
    credit_active_lots(
        member,
        posting,
        [(points, rules.expiry_for(now))],
        source=Lot.Source.ACTION,
        now=now,
    )
    member.lifetime_earned += points
    save_balances(member)
    return posting


@transaction.atomic
def confirm_lot(*, lot, now=None):
    """Make a pending lot spendable, with its expiry date; None if it is not pending."""
    member = lock_member(lot.member_id)
    key = f"confirm:{lot.pk}"
    if posting := existing_posting(key):
        return posting
    lot = Lot.objects.get(pk=lot.pk)
    if lot.status != Lot.Status.PENDING:
        return None
    now = now or timezone.now()
    points = lot.remaining
    lot.status = Lot.Status.ACTIVE
    lot.confirmed_at = now
    lot.expires_at = rules.expiry_for(now)
    lot.save(update_fields=["status", "confirmed_at", "expires_at"])
    posting = new_posting(
        member,
        key=key,
        kind=Posting.Kind.CONFIRM,
        created_at=now,
        order_number=lot.order_number,
    )
    if points:
        Entry.objects.create(
            posting=posting,
            member=member,
            lot=lot,
            available_change=points,
            pending_change=-points,
        )
    member.pending -= points
    member.available += points
    save_balances(member)
    return posting


def confirm_order(*, order_number, now=None):
    """Confirm every pending lot the order earned; returns the new postings."""
    lots = Lot.objects.filter(order_number=order_number, status=Lot.Status.PENDING)
    postings = [confirm_lot(lot=lot, now=now) for lot in lots.order_by("id")]
    return [posting for posting in postings if posting is not None]


def _release_holds_beyond(member, now):
    """Release the member's newest holds until what is held is available again.

    A reversal may take back points a basket holds; that basket's order would then
    spend points the member no longer has. Its checkout fails with
    :class:`~oscar_loyalty.exceptions.HoldNotActive` and the shopper applies again.
    """
    for hold in Hold.objects.filter(member=member, status=Hold.Status.ACTIVE).order_by(
        "-created_at", "-id"
    ):
        if member.held <= member.available:
            break
        hold.status = Hold.Status.RELEASED
        hold.closed_at = now
        hold.save(update_fields=["status", "closed_at"])
        member.held -= hold.points


# Redeeming ----------------------------------------------------------------------


@transaction.atomic
def redeem(*, member, points, key, reason="", order_number="", now=None):
    """Spend ``points`` at once (a reward, a coupon bought with points)."""
    points = valid_points(points)
    member = lock_member(member.pk)
    if posting := existing_posting(key):
        return posting
    if points > member.spendable:
        raise InsufficientPoints(spendable=member.spendable, requested=points)
    posting = new_posting(
        member,
        key=key,
        kind=Posting.Kind.REDEEM,
        created_at=now or timezone.now(),
        order_number=order_number,
        reason=reason,
    )
    consume_fifo(member, posting, points)
    member.available -= points
    save_balances(member)
    return posting


@transaction.atomic
def restore_redemption(*, order_number, now=None):
    """Give back the points an order redeemed, as new lots with the old expiry dates.

    For a cancelled or refunded order. Returns None when the order redeemed nothing.
    """
    return give_back(
        redemption_key=f"redeem:{order_number}",
        key=f"restore:{order_number}",
        kind=Posting.Kind.RESTORE,
        source=Lot.Source.RESTORE,
        order_number=order_number,
        now=now,
    )


@transaction.atomic
def give_back(
    *, redemption_key, key, kind, source, order_number="", reason="", now=None
):
    """Return what the redemption posting ``redemption_key`` spent, as new lots with
    the expiry dates of the lots it came from (points already past them expire at
    the next expiry run, as they would have). None when there is no such posting."""
    redemption = Posting.objects.filter(key=redemption_key).first()
    if redemption is None:
        return None
    member = lock_member(redemption.member_id)
    if posting := existing_posting(key):
        return posting
    now = now or timezone.now()
    posting = new_posting(
        member,
        key=key,
        kind=kind,
        created_at=now,
        order_number=order_number,
        reason=reason,
    )
    spent = redemption.entries.order_by("lot_id").values_list(
        "available_change", "lot__expires_at"
    )
    credit_active_lots(
        member,
        posting,
        [(-change, expires_at) for change, expires_at in spent],
        source=source,
        now=now,
        order_number=order_number,
    )
    save_balances(member)
    return posting


# Reversing, adjusting ----------------------------------------------------------


@transaction.atomic
def reverse_lot(*, lot, points, key, reason="", now=None):
    """Take back up to ``points`` of what ``lot`` earned (a cancelled or refunded line).

    A pending lot loses them from its pending points. For a confirmed lot the points
    come from the lot itself first, then, if the member already spent them, from the
    member's other spendable points, oldest expiry first. What was spent and cannot
    be covered is recorded as the posting's ``shortfall``: a balance never goes
    negative. Points of the lot that already expired are not taken again. Points a
    basket holds can be taken back too: the newest holds are then released.
    """
    points = valid_points(points)
    member = lock_member(lot.member_id)
    if posting := existing_posting(key):
        return posting
    lot = Lot.objects.get(pk=lot.pk)
    now = now or timezone.now()
    expired = -sum(
        lot.entries.filter(posting__kind=Posting.Kind.EXPIRE).values_list(
            "available_change", flat=True
        )
    )
    owed = max(0, min(points, lot.points - lot.reversed - expired))
    was_pending = lot.status == Lot.Status.PENDING
    if was_pending:
        from_lot, from_others = owed, 0
    else:
        # available = the sum of active remainders, so the other lots can give
        # everything asked of them here.
        from_lot = min(owed, lot.remaining)
        from_others = max(0, min(owed - from_lot, member.available - from_lot))
    posting = new_posting(
        member,
        key=key,
        kind=Posting.Kind.REVERSE,
        created_at=now,
        order_number=lot.order_number,
        reason=reason,
        shortfall=owed - from_lot - from_others,
    )
    if owed == 0:
        return posting
    balance = "pending" if was_pending else "available"
    if from_lot:
        Entry.objects.create(
            posting=posting, member=member, lot=lot, **{f"{balance}_change": -from_lot}
        )
        lot.remaining -= from_lot
        setattr(member, balance, getattr(member, balance) - from_lot)
    lot.reversed += owed
    if lot.remaining == 0 and lot.status in (Lot.Status.PENDING, Lot.Status.ACTIVE):
        lot.status = Lot.Status.REVERSED
    lot.save(update_fields=["remaining", "reversed", "status"])
    if from_others and consume_fifo(member, posting, from_others) != from_others:
        raise LedgerDrift(member=member.number)
    member.available -= from_others
    if member.held > member.available:
        _release_holds_beyond(member, now)
    member.lifetime_earned -= owed
    save_balances(member)
    return posting


@transaction.atomic
def adjust(*, member, points, reason, actor, key=None, now=None):
    """A staff correction: add (positive) or take away (negative) points.

    A reason is required and kept with the acting user. Taking away more than the
    member can spend is refused; nothing is written.
    """
    if isinstance(points, bool) or not isinstance(points, int) or points == 0:
        raise InvalidPoints()
    reason = (reason or "").strip()
    if not reason:
        raise ReasonRequired()
    member = lock_member(member.pk)
    key = key or f"adjust:{uuid.uuid4()}"
    if posting := existing_posting(key):
        return posting
    now = now or timezone.now()
    if points < 0 and -points > member.spendable:
        raise InsufficientPoints(spendable=member.spendable, requested=-points)
    posting = new_posting(
        member,
        key=key,
        kind=Posting.Kind.ADJUST,
        created_at=now,
        reason=reason[:255],
        actor=actor,
    )
    if points > 0:
        credit_active_lots(
            member,
            posting,
            [(points, rules.expiry_for(now))],
            source=Lot.Source.ADJUST,
            now=now,
        )
        member.lifetime_earned += points
    else:
        consume_fifo(member, posting, -points)
        member.available += points
    save_balances(member)
    return posting
