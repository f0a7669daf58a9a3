"""Reserve → capture → release: points applied to a basket at checkout.

A hold reserves points (``Member.held``) so two baskets, or two browser tabs, can
never spend the same points; the order captures it inside its own transaction.
Same locking discipline as :mod:`.ledger`.
"""

from datetime import timedelta

from django.db import connection, transaction
from django.utils import timezone

from ..conf import loyalty_settings
from ..exceptions import HoldNotActive, InsufficientPoints, LedgerDrift
from ..models import Hold, Member, Posting
from .ledger import (
    consume_fifo,
    existing_posting,
    lock_member,
    lock_members,
    new_posting,
    save_balances,
    valid_points,
)

#: First key of the advisory locks that serialise holds per basket ("LOYH").
BASKET_LOCK_NAMESPACE = 0x4C4F5948


@transaction.atomic
def hold_points(*, member, basket_id, points, now=None):
    """Reserve ``points`` for a basket, replacing the basket's previous hold.

    Refused with :class:`InsufficientPoints` when the member cannot spend that many
    (points held by *other* baskets are not spendable).
    """
    points = valid_points(points)
    now = now or timezone.now()
    # Only this function creates active holds, and it serialises per basket first:
    # the basket's current holder read next cannot change before the members
    # involved are locked (in primary-key order).
    lock_basket(basket_id)
    active = Hold.objects.filter(basket_id=basket_id, status=Hold.Status.ACTIVE)
    seen = active.values_list("member_id", flat=True).first()
    locked = lock_members({member.pk} | ({seen} if seen else set()))
    member = locked[member.pk]
    previous = active.first()  # read again under the locks
    if previous is not None and previous.member_id != member.pk:
        # A basket changes hands only by merging; its old owner's hold goes back.
        other = locked[previous.member_id]
        _close_hold(previous, Hold.Status.RELEASED, now)
        other.held -= previous.points
        save_balances(other)
        previous = None
    spendable = member.spendable + (previous.points if previous else 0)
    if points > spendable:
        raise InsufficientPoints(spendable=spendable, requested=points)
    if previous is not None:
        _close_hold(previous, Hold.Status.RELEASED, now)
        member.held -= previous.points
    hold = Hold.objects.create(
        member=member,
        basket_id=basket_id,
        points=points,
        created_at=now,
        expires_at=now + timedelta(minutes=loyalty_settings.HOLD_TIMEOUT_MINUTES),
    )
    member.held += points
    save_balances(member)
    return hold


def lock_basket(basket_id):
    """Serialise hold changes of one basket until the transaction ends.

    A PostgreSQL transaction-level advisory lock (the basket may be Oscar's or a
    test's number, with no row of ours to lock). SQLite runs one writing
    transaction at a time (``transaction_mode: IMMEDIATE``), so it needs none.
    """
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(%s, %s)",
                [BASKET_LOCK_NAMESPACE, basket_id % 2**31],
            )


def _close_hold(hold, status, now, order_number=""):
    hold.status = status
    hold.closed_at = now
    hold.order_number = order_number
    hold.save(update_fields=["status", "closed_at", "order_number"])


@transaction.atomic
def release_hold(*, hold, now=None):
    """Give a hold's points back to the member; True if it was still active."""
    member = lock_member(hold.member_id)
    hold = Hold.objects.get(pk=hold.pk)
    if hold.status != Hold.Status.ACTIVE:
        return False
    _close_hold(hold, Hold.Status.RELEASED, now or timezone.now())
    member.held -= hold.points
    save_balances(member)
    return True


def release_basket_hold(*, basket_id, now=None):
    """Release the basket's active hold, if it has one."""
    hold = Hold.objects.filter(basket_id=basket_id, status=Hold.Status.ACTIVE).first()
    return release_hold(hold=hold, now=now) if hold else False


@transaction.atomic
def capture_hold(*, hold, order_number, now=None):
    """Turn a basket's hold into the order's redemption (``redeem:<order>``).

    Called inside the transaction that creates the order, so the order and the debit
    commit together. A released hold (points removed, basket changed, or released
    by the stale-hold job after its timeout) raises :class:`HoldNotActive`, which
    rolls the order back too.
    """
    member = lock_member(hold.member_id)
    key = f"redeem:{order_number}"
    if posting := existing_posting(key):
        return posting
    hold = Hold.objects.get(pk=hold.pk)
    if hold.status != Hold.Status.ACTIVE:
        raise HoldNotActive()
    return _redeem(member, hold, hold.points, key, order_number, now or timezone.now())


def _redeem(member, hold, points, key, order_number, now):
    """Debit ``points`` (locked ``member``, checked) and close ``hold`` if any.

    The hold's points all leave ``held``: what the order did not use is the
    member's to spend again.
    """
    posting = new_posting(
        member,
        key=key,
        kind=Posting.Kind.REDEEM,
        created_at=now,
        order_number=order_number,
    )
    taken = consume_fifo(member, posting, points)
    if taken != points:
        # held <= available is a database constraint, so this means drift: refuse
        # (rolling the order back) rather than sell points the lots do not have.
        raise LedgerDrift(member=member.number, held=points, found=taken)
    if hold is not None:
        _close_hold(hold, Hold.Status.CAPTURED, now, order_number)
        member.held -= hold.points
    member.available -= points
    save_balances(member)
    return posting


@transaction.atomic
def capture_basket(*, user_id, basket_id, points, order_number, now=None):
    """Debit ``points`` for an order from the basket's hold (``redeem:<order>``).

    What :func:`capture_hold` does for the checkout, where the discount may use
    fewer points than were held (the basket shrank under the share limit): the
    rest of the hold goes back to the member. If the hold is gone (released by
    its timeout while the shopper paid), the points are taken from what the member
    can still spend, or the order is refused with :class:`HoldNotActive`: never
    are points sold twice. Idempotent by the order's key.
    """
    points = valid_points(points)
    now = now or timezone.now()
    key = f"redeem:{order_number}"
    member_id = (
        Member.objects.filter(user_id=user_id).values_list("pk", flat=True).first()
    )
    if member_id is None:
        raise HoldNotActive()
    member = lock_member(member_id)
    if posting := existing_posting(key):
        return posting
    hold = Hold.objects.filter(
        basket_id=basket_id, status=Hold.Status.ACTIVE, member=member
    ).first()
    held = hold.points if hold is not None else 0
    if points > member.spendable + held:
        raise HoldNotActive()
    return _redeem(member, hold, points, key, order_number, now)
