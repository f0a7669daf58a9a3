"""Verifying the ledger: every cached balance against the rows it caches.

``find_drift()`` is what the ``check_loyalty_ledger`` command and the tests run.
Each check is one aggregate query over the whole ledger (or the given members), so
it stays usable on a large programme.
"""

from dataclasses import dataclass

from django.db.models import F, OuterRef, Subquery, Sum, Value
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


def _subquery_sum(queryset, field):
    """Σ ``field`` of ``queryset`` rows of the outer member (0 when none)."""
    total = (
        queryset.filter(member_id=OuterRef("pk"))
        .order_by()
        .values("member_id")
        .annotate(total=Sum(field))
        .values("total")
    )
    return Coalesce(Subquery(total), Value(0))


def _lot_sum(field, **filters):
    return _subquery_sum(Lot.objects.filter(**filters), field)


def _entry_sum(field):
    return _subquery_sum(Entry.objects.all(), field)


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
    # Each figure is compared in SQL; only members that disagree come back.
    checks = [
        ("available", "lots", _lot_sum("remaining", status=Lot.Status.ACTIVE)),
        ("pending", "lots", _lot_sum("remaining", status=Lot.Status.PENDING)),
        (
            "lifetime_earned",
            "lots",
            _lot_sum(
                "points",
                source__in=[
                    Lot.Source.EARN,
                    Lot.Source.ADJUST,
                    Lot.Source.ACTION,
                    Lot.Source.IMPORT,
                ],
            )
            - _lot_sum("reversed"),
        ),
        ("available", "entries", _entry_sum("available_change")),
        ("pending", "entries", _entry_sum("pending_change")),
        (
            "held",
            "holds",
            _subquery_sum(Hold.objects.filter(status=Hold.Status.ACTIVE), "points"),
        ),
    ]
    for field, source, expression in checks:
        mismatched = (
            members.annotate(expected=expression)
            .exclude(**{field: F("expected")})
            .values_list("pk", field, "expected")
        )
        what = f"member {field.replace('_', ' ')} vs {source}"
        for pk, cached, should_be in mismatched:
            problems.append(Drift(what, pk, cached, should_be))
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
