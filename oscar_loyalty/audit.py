"""Verifying the ledger: every cached balance against the rows it caches.

``find_drift()`` is what the ``check_loyalty_ledger`` command and the tests run.
Each check is one aggregate query over the whole ledger (or the given members), so
it stays usable on a large programme.
"""

from dataclasses import dataclass

from django.db.models import Q, Sum, Value
from django.db.models.functions import Coalesce

from .models import Entry, Hold, Lot, Member, Posting


@dataclass(frozen=True)
class Drift:
    """One cached figure that disagrees with the ledger rows."""

    what: str
    object_id: int
    cached: int
    expected: int

    def __str__(self):
        return (
            f"{self.what} #{self.object_id}: cached {self.cached}, "
            f"ledger says {self.expected}"
        )


def _sum(field, **filters):
    return Coalesce(Sum(field, filter=Q(**filters)), Value(0))


def find_drift(member_ids=None):
    """Every disagreement between cached balances and ledger rows (empty: healthy).

    Invariants: ``available`` = Σ active lot remainders = Σ entries' available
    changes; ``pending`` = Σ pending lot remainders = Σ entries' pending changes;
    ``held`` = Σ active holds; ``lifetime_earned`` = Σ points of earned and added
    lots less what reversals took back; each lot's ``remaining`` = Σ its entries.
    """
    members = Member.objects.all()
    lots = Lot.objects.all()
    if member_ids is not None:
        members = members.filter(pk__in=member_ids)
        lots = lots.filter(member_id__in=member_ids)
    problems = []
    from_lots = members.annotate(
        lot_available=_sum("lots__remaining", lots__status=Lot.Status.ACTIVE),
        lot_pending=_sum("lots__remaining", lots__status=Lot.Status.PENDING),
        lot_earned=_sum(
            "lots__points", lots__source__in=[Lot.Source.EARN, Lot.Source.ADJUST]
        ),
        lot_reversed=_sum("lots__reversed"),
    ).values_list(
        "pk",
        "available",
        "pending",
        "lifetime_earned",
        "lot_available",
        "lot_pending",
        "lot_earned",
        "lot_reversed",
    )
    for pk, available, pending, lifetime, l_av, l_pe, l_earned, l_rev in from_lots:
        if available != l_av:
            problems.append(Drift("member available vs lots", pk, available, l_av))
        if pending != l_pe:
            problems.append(Drift("member pending vs lots", pk, pending, l_pe))
        if lifetime != l_earned - l_rev:
            problems.append(
                Drift("member lifetime earned vs lots", pk, lifetime, l_earned - l_rev)
            )
    entry_totals = {
        pk: (av, pe)
        for pk, av, pe in Entry.objects.filter(member__in=members)
        .values("member_id")
        .annotate(av=Sum("available_change"), pe=Sum("pending_change"))
        .values_list("member_id", "av", "pe")
    }
    active_holds = dict(
        Hold.objects.filter(member__in=members, status=Hold.Status.ACTIVE)
        .values("member_id")
        .annotate(total=Sum("points"))
        .values_list("member_id", "total")
    )
    for pk, available, pending, held in members.values_list(
        "pk", "available", "pending", "held"
    ):
        av, pe = entry_totals.get(pk, (0, 0))
        if available != av:
            problems.append(Drift("member available vs entries", pk, available, av))
        if pending != pe:
            problems.append(Drift("member pending vs entries", pk, pending, pe))
        if held != active_holds.get(pk, 0):
            problems.append(
                Drift("member held vs holds", pk, held, active_holds.get(pk, 0))
            )
    mismatched_lots = (
        lots.annotate(
            from_entries=Coalesce(
                Sum("entries__available_change") + Sum("entries__pending_change"),
                Value(0),
            )
        )
        .exclude(remaining=Coalesce("from_entries", Value(0)))
        .values_list("pk", "remaining", "from_entries")
    )
    for pk, remaining, from_entries in mismatched_lots:
        problems.append(Drift("lot remaining vs entries", pk, remaining, from_entries))
    orphans = Posting.objects.filter(member__in=members, entries__isnull=True).exclude(
        kind__in=[Posting.Kind.CONFIRM, Posting.Kind.REVERSE]
    )
    for pk in orphans.values_list("pk", flat=True):
        problems.append(Drift("posting without entries", pk, 0, 1))
    return problems
