"""Member segments: how recently each member was active, and what they are worth.

Only members who agreed to profiling are scored (``consent.consenting
("profiling")``); a member who withdraws it loses their segments and their
scoring history at the next run.

* **Activity** (``OSCAR_LOYALTY_ACTIVITY_DAYS``, default 30/90/180): days since
  the member's last interaction — an order placed, a sign-in, an action reward
  (check-in, review…), points redeemed, or joining — make them *active* (up to
  30), *cooling* (up to 90), *at risk* (up to 180) or *dormant* (beyond).
* **Value** (``OSCAR_LOYALTY_VALUE_WINDOW_MONTHS``, default 12): the members who
  spent anything in the window (orders not cancelled, less refunds) are ranked
  by spend; the top 20 % are *top*, the bottom 20 % *bottom*, the rest *middle*
  (members tied with the last of the top 20 % are top as well). Members who
  spent nothing are *no purchases*.

A run has one timestamp. :func:`value_thresholds` is computed once for the whole
run (so every chunk ranks against all members), then :func:`score_range` scores
a range of member ids: one query reads the chunk's members with their last
interaction and spend, their history rows for the run are written with one
statement (replacing any a retried chunk wrote before), and their current
segments with one UPDATE per segment pair. Running a chunk twice changes
nothing.
"""

import math
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count as CountOf
from django.db.models import (
    DecimalField,
    F,
    IntegerField,
    Max,
    OuterRef,
    Subquery,
    Sum,
)
from django.db.models.functions import Coalesce, Greatest

from . import consent, rules
from .bulk import AnyOf, insert_rows
from .conf import loyalty_settings
from .models import ActionAward, Member, MemberScore, OrderActivity, Posting

ZERO = Decimal("0.00")
TOP_SHARE = Decimal("0.2")


def activity_of(days, bounds=None):
    """The activity segment of a member last active ``days`` ago."""
    active, cooling, at_risk = bounds or loyalty_settings.ACTIVITY_DAYS
    if days <= active:
        return "active"
    if days <= cooling:
        return "cooling"
    if days <= at_risk:
        return "at_risk"
    return "dormant"


@dataclass(frozen=True)
class Thresholds:
    """Spend at or above ``top`` is top, at or below ``bottom`` bottom (both
    None when nobody spent anything)."""

    top: Decimal | None
    bottom: Decimal | None

    def value_of(self, spend):
        if not spend or spend <= 0 or self.top is None:
            return "none"
        if spend >= self.top:
            return "top"
        if spend <= self.bottom:
            return "bottom"
        return "middle"

    def as_list(self):
        return [
            None if self.top is None else str(self.top),
            None if self.bottom is None else str(self.bottom),
        ]

    @classmethod
    def from_list(cls, values):
        top, bottom = values
        return cls(
            None if top is None else Decimal(top),
            None if bottom is None else Decimal(bottom),
        )


def window_start(now):
    return rules.add_months(now, -loyalty_settings.VALUE_WINDOW_MONTHS)


def _spend_rows(now):
    """Orders in the value window that count: placed, not cancelled."""
    return OrderActivity.objects.filter(
        placed_at__gt=window_start(now), placed_at__lte=now, cancelled_at__isnull=True
    )


def value_thresholds(now):
    """The spends that open the top 20 % and close the bottom 20 % among the
    members who agreed to profiling and spent anything: two queries over the
    members' spend totals, whatever their number."""
    spenders = (
        _spend_rows(now)
        .filter(member__in=consent.consenting("profiling"))
        .values("member_id")
        .annotate(total=Sum(F("spend") - F("refunded")))
        .filter(total__gt=0)
    )
    count = spenders.count()
    if not count:
        return Thresholds(None, None)
    share = max(1, math.ceil(count * TOP_SHARE))
    ranked = spenders.order_by("-total", "member_id").values_list("total", flat=True)
    top = ranked[share - 1]
    bottom = ranked[count - share]
    return Thresholds(Decimal(top), Decimal(bottom))


def _latest(queryset, field):
    return Subquery(
        queryset.filter(member_id=OuterRef("pk"))
        .order_by()
        .values("member_id")
        .annotate(last=Max(field))
        .values("last")
    )


def _members_with_signals(members, now):
    """``members`` with their last interaction, spend and orders in the window."""
    User = get_user_model()
    joined = F("joined_at")
    signals = [
        _latest(OrderActivity.objects.filter(placed_at__lte=now), "placed_at"),
        _latest(ActionAward.objects.filter(created_at__lte=now), "created_at"),
        _latest(
            Posting.objects.filter(kind=Posting.Kind.REDEEM, created_at__lte=now),
            "created_at",
        ),
    ]
    if "last_login" in {field.name for field in User._meta.get_fields()}:
        signals.append(F("user__last_login"))
    window = _spend_rows(now).filter(member_id=OuterRef("pk")).order_by()
    spend = Subquery(
        window.values("member_id")
        .annotate(total=Sum(F("spend") - F("refunded")))
        .values("total"),
        output_field=DecimalField(max_digits=14, decimal_places=2),
    )
    orders = Subquery(
        window.values("member_id").annotate(n=CountOf("pk")).values("n"),
        output_field=IntegerField(),
    )
    # Each signal falls back to the joining date: some databases' GREATEST
    # gives NULL when any argument is NULL.
    return members.annotate(
        last_interaction=Greatest(
            joined, *(Coalesce(signal, joined) for signal in signals)
        ),
        window_spend=Coalesce(spend, ZERO),
        window_orders=Coalesce(orders, 0),
    )


@transaction.atomic
def score_range(*, now, thresholds, start_id=None, end_id=None):
    """Score the members with ``start_id <= pk < end_id`` for the run ``now``;
    returns how many were scored."""
    members = Member.objects.all()
    if start_id is not None:
        members = members.filter(pk__gte=start_id)
    if end_id is not None:
        members = members.filter(pk__lt=end_id)
    forget_unconsenting(members)
    scored = consent.consenting("profiling", members)
    rows = list(
        _members_with_signals(scored, now).values_list(
            "pk", "last_interaction", "window_spend", "window_orders"
        )
    )
    if not rows:
        return 0
    bounds = loyalty_settings.ACTIVITY_DAYS
    history, pairs = [], {}
    for pk, last, spend, orders in rows:
        days = max((now - last) / timedelta(days=1), 0)
        activity = activity_of(days, bounds)
        value = thresholds.value_of(spend)
        pairs.setdefault((activity, value), []).append(pk)
        history.append(
            {
                "member_id": pk,
                "scored_at": now,
                "activity_segment": activity,
                "value_segment": value,
                "last_interaction_at": last,
                "spend": spend,
                "orders": orders,
            }
        )
    ids = [pk for pk, *_ in rows]
    # A retried chunk replaces what it wrote before.
    MemberScore.objects.filter(AnyOf("member_id", ids), scored_at=now).delete()
    insert_rows(MemberScore, history)
    for (activity, value), pks in pairs.items():
        Member.objects.filter(AnyOf("pk", pks)).exclude(scored_at__gt=now).update(
            activity_segment=activity, value_segment=value, scored_at=now
        )
    return len(rows)


def forget(members):
    """The segments and scoring history of ``members`` (a queryset) go."""
    members.exclude(activity_segment="", value_segment="", scored_at=None).update(
        activity_segment="", value_segment="", scored_at=None
    )
    MemberScore.objects.filter(member__in=members).delete()


def forget_unconsenting(members):
    """Members of ``members`` without profiling consent (withdrawn, or their
    account closed) keep no segments and no scoring history."""
    forget(members.exclude(pk__in=consent.consenting("profiling", members)))


def score_all(now):
    """Score every member now, in this process (tests, the command, small shops)."""
    return score_range(now=now, thresholds=value_thresholds(now))
