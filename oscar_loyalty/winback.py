"""Win-back: what the shop does for members whose churn risk crosses a line,
and whether they came back.

After each scoring run (:func:`start`), every active
:class:`~oscar_loyalty.models.WinBackRule` picks the run's members whose churn
risk reaches its threshold and whom no rule has picked within its period
(``period_days``); a member reached by several rules in one run gets the first
rule's (highest priority, then highest threshold). Tier protection picks only
members in a tier. Each pick is a
:class:`~oscar_loyalty.models.WinBack` row. ``holdout_percent`` of the picks (a
fixed draw from the rule, the member and the run) are the control group and get
nothing; the others get the rule's action:

* ``coupon``: a coupon of the rule's design (key ``winback:<rule>:<member>:<run>``);
* ``points``: ``multiplier`` × points on every order for ``days`` days (the
  member's points boost, on top of rules and tier);
* ``protect``: no tier downgrade for ``days`` days (a later protection is kept).

They are told with one "we miss you" message naming what they got.

:func:`report` measures a rule: of the members picked at least 30 (60, 90)
days ago, how many placed an order within 30 (60, 90) days of being picked,
for those who got the action and for the control group; the difference is
what the action changed.
"""

import hashlib
from datetime import timedelta

from django.db import transaction
from django.db.models import Count, F, OuterRef, Q, Subquery, Value
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from .bulk import AnyOf
from .models import Member, MemberScore, OrderActivity, WinBack, WinBackRule
from .notifications import notify

#: Days after being picked within which an order counts as coming back.
RETURN_DAYS = (30, 60, 90)


def held_out(rule, member_id, run_at, percent):
    """Whether this pick is in the control group: a fixed draw (the same on a
    retry), ``percent`` in 100."""
    if not percent:
        return False
    seed = f"{rule.pk}:{member_id}:{run_at.isoformat()}".encode()
    return int.from_bytes(hashlib.sha256(seed).digest()[:4], "big") % 100 < percent


def start(run):
    """The win-backs of the scoring ``run``; returns ``{rule id: picks}``.

    One transaction per rule; a rule already done for this run (a retried
    task) picks no one again (one win-back per member per run)."""
    started = {}
    for rule in WinBackRule.objects.filter(is_active=True).select_related(
        "coupon_design"
    ):
        started[rule.pk] = _start_rule(rule, run.scored_at)
    return started


@transaction.atomic
def _start_rule(rule, run_at):
    # Picked by any rule within this rule's period (this run included): not
    # again, so a control group stays untouched while it is measured and no
    # one gets a second "we miss you".
    recent = WinBack.objects.filter(
        started_at__gt=run_at - timedelta(days=rule.period_days)
    )
    candidates = MemberScore.objects.filter(
        scored_at=run_at, churn_risk__gte=rule.threshold
    )
    if rule.action == WinBackRule.Action.PROTECT:
        # Only a member in a tier has a tier to protect.
        candidates = candidates.filter(
            member_id__in=Member.objects.filter(tier__isnull=False).values("pk")
        )
    picked = list(
        candidates.exclude(member_id__in=recent.values("member_id"))
        .order_by("member_id")
        .values_list("member_id", "churn_risk")
    )
    if not picked:
        return 0
    until = run_at + timedelta(days=rule.days)
    treated = [
        member_id
        for member_id, _risk in picked
        if not held_out(rule, member_id, run_at, rule.holdout_percent)
    ]
    coupons = _act(rule, treated, run_at, until) if treated else {}
    treated = set(treated)
    WinBack.objects.bulk_create(
        [
            WinBack(
                rule=rule,
                member_id=member_id,
                started_at=run_at,
                churn_risk=risk,
                action=rule.action,
                held_out=member_id not in treated,
                until=None if rule.action == WinBackRule.Action.COUPON else until,
                coupon_id=coupons.get(member_id),
            )
            for member_id, risk in picked
        ],
        batch_size=5000,
    )
    return len(picked)


def _act(rule, member_ids, run_at, until):
    """The rule's action for ``member_ids`` and their message; returns
    ``{member id: coupon id}`` of the coupons issued (coupon rules)."""
    Action = WinBackRule.Action
    # The message reads the boost or the protection off the member.
    extra = {pk: {"winback_action": rule.action} for pk in member_ids}
    coupons = {}
    if rule.action == Action.COUPON:
        from .services.coupons import issue_to_members

        issued = {}
        issue_to_members(
            rule.coupon_design,
            member_ids,
            lambda pk: f"winback:{rule.pk}:{pk}:{run_at:%Y%m%d%H%M%S}",
            reason=rule.name,
            now=run_at,
            event=None,
            collect=issued,
        )
        coupons = {member_id: ids[0] for member_id, ids in issued.items()}
        for member_id, coupon_id in coupons.items():
            extra[member_id]["coupon_id"] = coupon_id
    elif rule.action == Action.POINTS:
        Member.objects.filter(AnyOf("pk", member_ids)).update(
            points_boost=rule.multiplier, points_boost_until=until
        )
    else:
        Member.objects.filter(AnyOf("pk", member_ids), tier__isnull=False).update(
            tier_protected_until=Greatest(
                Coalesce(F("tier_protected_until"), Value(until)), Value(until)
            )
        )
    notify("winback", member_ids, extra)
    return coupons


def returned_at():
    """The first order (not cancelled) a win-back's member placed after it
    started: an expression for :class:`WinBack` querysets."""
    return Subquery(
        OrderActivity.objects.filter(
            member_id=OuterRef("member_id"),
            placed_at__gt=OuterRef("started_at"),
            cancelled_at__isnull=True,
        )
        .order_by("placed_at")
        .values("placed_at")[:1]
    )


def report(rules, *, now=None):
    """``{rule id: {"treated": …, "control": …}}``: per group, the members
    picked and, per return window, how many were picked long enough ago and
    how many of those came back within it (one query for all ``rules``)."""
    now = now or timezone.now()
    aggregates = {"picked": Count("pk")}
    for days in RETURN_DAYS:
        old_enough = Q(started_at__lte=now - timedelta(days=days))
        aggregates[f"due_{days}"] = Count("pk", filter=old_enough)
        aggregates[f"back_{days}"] = Count(
            "pk",
            filter=old_enough
            & Q(returned__isnull=False)
            & Q(returned__lte=F("started_at") + timedelta(days=days)),
        )
    rows = (
        WinBack.objects.filter(rule__in=rules)
        .annotate(returned=returned_at())
        .order_by()
        .values("rule_id", "held_out")
        .annotate(**aggregates)
    )
    results = {rule.pk: {"treated": _empty(), "control": _empty()} for rule in rules}
    for row in rows:
        group = "control" if row["held_out"] else "treated"
        results[row["rule_id"]][group] = {
            "picked": row["picked"],
            "windows": [
                _window(days, row[f"due_{days}"], row[f"back_{days}"])
                for days in RETURN_DAYS
            ],
        }
    for result in results.values():
        result["uplift"] = [
            (
                None
                if treated["rate"] is None or control["rate"] is None
                else treated["rate"] - control["rate"]
            )
            for treated, control in zip(
                result["treated"]["windows"], result["control"]["windows"], strict=True
            )
        ]
    return results


def _window(days, due, back):
    return {
        "days": days,
        "due": due,
        "back": back,
        "rate": round(100 * back / due, 1) if due else None,
    }


def _empty():
    return {"picked": 0, "windows": [_window(days, 0, 0) for days in RETURN_DAYS]}
