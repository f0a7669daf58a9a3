"""Points for Oscar orders: earning at placement, confirming, reversing, refunding.

Called by :mod:`oscar_loyalty.receivers` (which never let an error reach Oscar's
checkout) and by the backfill command. Every function is idempotent: the keys are
``earn:<order>:<line>``, ``confirm:<lot>``, ``reverse:<order>:<lot>:status`` and
``reverse:refund:<event>:<line>``, so a signal sent twice, a retried task or a status
set twice writes nothing new.
"""

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from .. import earning, rules_lookup, scoring
from ..conf import loyalty_settings
from ..models import Entry, Lot, Member
from ..notifications import notify
from . import ledger, tiers
from .members import get_or_create_member


def earn_key(order_number, line_id):
    return f"earn:{order_number}:{line_id}"


def award_order(order, *, now=None, channel=Member.Channel.WEB):
    """Credit the order's lines as pending points; returns the points credited.

    Guests (no ``order.user``) earn nothing, nor does an order already in a reverse
    status; one already in a confirm status is confirmed at once (a shop whose first
    status confirms, or an order awarded late by the catch-up task or the backfill).
    Each line earns under the best earn rule active when the order was placed (not
    when it is awarded: a late award by the catch-up task or the backfill earns what
    the shopper was promised), and its lot records that rule and version; the
    member's tier multiplies the rule's multiplier. The order's spend is recorded
    for tiers (:mod:`oscar_loyalty.services.tiers`). A fixed
    number of queries whatever the number of lines, rules or the member's history:
    the rules are read once, and the lines' own query says which rules hold them.
    """
    if order.user_id is None or order.status in loyalty_settings.REVERSE_STATUSES:
        return 0
    placed = order.date_placed or now or timezone.now()
    includes_tax = loyalty_settings.EARN_INCLUDES_TAX
    now = now or order.date_placed or timezone.now()
    with transaction.atomic(savepoint=False):
        # The member first: the rules of a campaign depend on the member's tier.
        member = _locked_member_with_tier(order.user_id)
        if member is None:  # the customer's first order since the plugin came
            get_or_create_member(order.user, channel=channel)
            member = _locked_member_with_tier(order.user_id)
        rules = rules_lookup.active_rules(
            placed,
            tier_rank=member.tier.rank if member.tier else None,
            segments=lambda: scoring.segments_of(member.pk),
        )
        order_lines = list(
            rules_lookup.annotate_rules(
                order.lines.all(), rules, product_field="product"
            )
        )
        lines = [
            (line.pk, line.line_price_excl_tax, line.line_price_incl_tax)
            for line in order_lines
        ]
        basis_excl = sum((excl for _, excl, _ in lines), 0)
        basis_incl = sum((incl for _, _, incl in lines), 0)
        line_rules = rules_lookup.rules_of(order_lines, rules, product_field="product")
        activity = tiers.order_spend(order_lines)
        results = earning.order_line_points(
            lines,
            order_total=basis_incl if includes_tax else basis_excl,
            includes_tax=includes_tax,
            rules=line_rules,
            tier_multiplier=member.points_multiplier(placed),
        )
        earned = earn_lines(
            member=member,
            locked=True,
            order_number=order.number,
            lines=results,
            now=now,
            placed_at=placed,
            spend=activity,
        )
    if order.status in loyalty_settings.CONFIRM_STATUSES:
        # An order complete before it was awarded (a backfill, a late award): no
        # message about points of an old order.
        confirm_order(order_number=order.number, tell=False)
    return earned


def _locked_member_with_tier(user_id):
    """The user's member row, locked, with its tier (one query); None if none."""
    return (
        Member.objects.select_for_update(of=("self",))
        .select_related("tier")
        .filter(user_id=user_id)
        .first()
    )


@transaction.atomic(savepoint=False)
def earn_lines(
    *,
    order_number,
    lines,
    now,
    member=None,
    user_id=None,
    locked=False,
    placed_at=None,
    spend=None,
):
    """Bulk :func:`ledger.earn` for an order's lines: one posting and lot per line.

    Atomic without a savepoint of its own: inside a caller's transaction (the
    ``order_placed`` receiver has its own savepoint) a failure rolls back with the
    caller's block, and the checkout saves two statements.

    The member is given (``locked``: already locked by the caller in this
    transaction), or found by ``user_id`` (None is returned when that user has no
    member account yet). With ``spend``, the order's activity towards tiers
    is recorded too (placed at ``placed_at``). Returns the points credited.
    """
    lock = Member.objects.select_for_update()
    if member is not None:
        if not locked:
            member = lock.get(pk=member.pk)
    else:
        member = lock.filter(user_id=user_id).first()
        if member is None:
            return None
    earnings = [
        ledger.Earning(
            earn_key(order_number, line.line_id),
            line.points,
            line.line_id,
            line.rule,
            line.rule_version,
        )
        for line in lines
    ]
    if spend is not None:
        tiers.record_order(
            member_id=member.pk,
            order_number=order_number,
            placed_at=placed_at or now,
            spend=spend,
        )
    if not earnings:
        return 0
    return ledger.write_earnings(member, earnings, order_number=order_number, now=now)


def confirm_order(*, order_number, now=None, tell=True):
    """Confirm the order's points and its activity towards tiers (maybe upgrading);
    with ``tell``, the member is told the points after the commit."""
    postings = ledger.confirm_order(order_number=order_number, now=now)
    tiers.confirm_order(order_number=order_number, now=now)
    if postings and tell:
        points = Entry.objects.filter(posting__in=postings).aggregate(
            total=Sum("available_change")
        )["total"]
        if points:
            member_id = postings[0].member_id
            notify("points_confirmed", [member_id], {member_id: {"points": points}})
    return postings


def order_status_changed(order, new_status, *, now=None):
    """Confirm or reverse the order's points when it reaches the owner's statuses."""
    if new_status in loyalty_settings.CONFIRM_STATUSES:
        return confirm_order(order_number=order.number, now=now)
    if new_status in loyalty_settings.REVERSE_STATUSES:
        return cancel_order(order_number=order.number, now=now)
    return []


@transaction.atomic
def cancel_order(*, order_number, now=None):
    """Give back what the order redeemed, then reverse everything it earned.

    In that order: the points the order spent are the member's again before its
    earnings are taken back, so the result is as if the order never happened.
    """
    postings = []
    tiers.cancel_order(order_number=order_number, now=now)
    restored = ledger.restore_redemption(order_number=order_number, now=now)
    if restored is not None:
        postings.append(restored)
    lots = Lot.objects.filter(order_number=order_number, source=Lot.Source.EARN)
    for lot in lots.order_by("id"):
        postings.append(
            ledger.reverse_lot(
                lot=lot,
                points=lot.points,
                key=f"reverse:{order_number}:{lot.pk}:status",
                now=now,
            )
        )
    return postings


def refund_line(*, event_id, line, quantity, now=None):
    """Reverse a refunded line's share of points (``quantity`` of its items).

    Refunds add up: the shares of every refund of a line total what it earned.
    """
    lot = Lot.objects.filter(
        order_line_id=line.pk, source=Lot.Source.EARN, order_number=line.order.number
    ).first()
    if lot is None:
        return None
    PaymentEventQuantity = line.payment_event_quantities.model
    codes = loyalty_settings.REFUND_EVENT_CODES
    refunded_before = (
        PaymentEventQuantity.objects.filter(
            line=line, event__event_type__code__in=codes, event_id__lt=event_id
        ).aggregate(total=Sum("quantity"))["total"]
        or 0
    )
    points = earning.refund_share(lot.points, line.quantity, refunded_before, quantity)
    if points <= 0:
        return None
    return ledger.reverse_lot(
        lot=lot,
        points=points,
        key=f"reverse:refund:{event_id}:{line.pk}",
        now=now,
    )
