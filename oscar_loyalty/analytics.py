"""The programme's figures for a period, compared with the period before.

Every figure is a handful of aggregate queries, whatever the number of members
or orders; nothing is read row by row. Definitions (also in the README):

* **member growth rate**: members who joined in the period / members before it;
* **active rate**: members active in the period (placed an order, redeemed
  points or earned an action reward) / members at its end;
* **retention rate**: members from before the period who were active in it /
  members before it;
* **repeat-purchase rate**: members with two orders or more in the period /
  members with one or more (orders not cancelled);
* **member contribution multiple**: the average order of members / the
  average order of everyone else (guests and customers who are not members),
  over Oscar's orders placed in the period (totals including tax), orders with
  a reversing status (``OSCAR_LOYALTY_REVERSE_STATUSES``) left out;
* **points issued / redeemed / expired**: points of the lots created in the
  period; points taken by redemptions and by expiry in it;
* **liability**: points members hold now × the point value; the **breakage
  estimate** is the share of points that left by expiring rather than being
  redeemed over the 12 months before the period's end, and the liability net of
  it is what the shop expects to pay;
* **activation funnel** of the members who joined in the period: registered →
  signed in again after their first day → completed their profile (the action
  reward) → first order (not cancelled) within 7 days of joining.
"""

from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django.db.models import Count, Exists, F, OuterRef, Q, Sum
from django.db.models.functions import Coalesce, TruncDay, TruncMonth, TruncWeek
from django.utils import timezone
from oscar.core.loading import get_model

from . import rules
from .conf import loyalty_settings
from .models import (
    SEGMENT_CHOICES,
    SEGMENT_DIMENSIONS,
    ActionAward,
    ActionRule,
    Campaign,
    CampaignOrder,
    Entry,
    Lot,
    Member,
    MemberScore,
    OrderActivity,
    Posting,
)

Order = get_model("order", "Order")

#: Days after joining within which a first order counts as activation.
ACTIVATION_DAYS = 7
#: Join-month cohorts shown, and months followed for each.
COHORTS = 6


@dataclass(frozen=True)
class Period:
    """Whole days from ``first`` to ``last`` (dates, both included), in the
    shop's time zone."""

    first: object
    last: object

    @property
    def start(self):
        return timezone.make_aware(datetime.combine(self.first, time.min))

    @property
    def end(self):
        return timezone.make_aware(
            datetime.combine(self.last + timedelta(days=1), time.min)
        )

    @property
    def days(self):
        return (self.last - self.first).days + 1

    def previous(self):
        """The period of the same length just before."""
        return Period(
            self.first - timedelta(days=self.days), self.first - timedelta(days=1)
        )

    def in_period(self, field):
        return Q(**{f"{field}__gte": self.start, f"{field}__lt": self.end})


def default_period(today=None):
    today = today or timezone.localdate()
    return Period(today - timedelta(days=29), today)


def _ratio(part, whole):
    return None if not whole else Decimal(part) / Decimal(whole)


def _active(period):
    """Members active in the period: placed an order (not cancelled), earned an
    action reward or redeemed points in it."""
    sources = (
        OrderActivity.objects.filter(
            period.in_period("placed_at"), cancelled_at__isnull=True
        ),
        ActionAward.objects.filter(period.in_period("created_at")),
        Posting.objects.filter(
            period.in_period("created_at"), kind=Posting.Kind.REDEEM
        ),
    )
    found = Q(pk__in=[])
    for source in sources:
        found |= Q(pk__in=source.values("member_id"))
    return found


def member_figures(period):
    counts = Member.objects.aggregate(
        before=Count("pk", filter=Q(joined_at__lt=period.start)),
        new=Count("pk", filter=period.in_period("joined_at")),
        at_end=Count("pk", filter=Q(joined_at__lt=period.end)),
    )
    active = Member.objects.filter(_active(period)).aggregate(
        active=Count("pk"),
        retained=Count("pk", filter=Q(joined_at__lt=period.start)),
    )
    buyers = (
        OrderActivity.objects.filter(
            period.in_period("placed_at"), cancelled_at__isnull=True
        )
        .values("member_id")
        .annotate(orders=Count("pk"))
        .order_by()
    )
    buying, repeating = buyers.count(), buyers.filter(orders__gte=2).count()
    return {
        "members": counts["at_end"],
        "new_members": counts["new"],
        "growth_rate": _ratio(counts["new"], counts["before"]),
        "active_members": active["active"],
        "active_rate": _ratio(active["active"], counts["at_end"]),
        "retention_rate": _ratio(active["retained"], counts["before"]),
        "repeat_rate": _ratio(repeating, buying),
    }


def order_figures(period):
    """Average orders of members and of everyone else (Oscar's orders)."""
    members = Q(user__loyalty_member__isnull=False)
    sums = (
        Order.objects.filter(period.in_period("date_placed"))
        .exclude(status__in=list(loyalty_settings.REVERSE_STATUSES))
        .aggregate(
            member_orders=Count("pk", filter=members),
            member_total=Sum("total_incl_tax", filter=members),
            other_orders=Count("pk", filter=~members),
            other_total=Sum("total_incl_tax", filter=~members),
        )
    )
    member_aov = (
        sums["member_total"] / sums["member_orders"] if sums["member_orders"] else None
    )
    other_aov = (
        sums["other_total"] / sums["other_orders"] if sums["other_orders"] else None
    )
    return {
        "member_orders": sums["member_orders"],
        "member_aov": member_aov,
        "other_orders": sums["other_orders"],
        "other_aov": other_aov,
        "contribution_multiple": (
            member_aov / other_aov if member_aov is not None and other_aov else None
        ),
    }


def _taken(period_q):
    """Points redeemed and expired in the entries matching ``period_q``."""
    sums = Entry.objects.filter(period_q).aggregate(
        redeemed=Coalesce(
            Sum(-F("available_change"), filter=Q(posting__kind=Posting.Kind.REDEEM)),
            0,
        ),
        expired=Coalesce(
            Sum(-F("available_change"), filter=Q(posting__kind=Posting.Kind.EXPIRE)),
            0,
        ),
    )
    return sums["redeemed"], sums["expired"]


def points_figures(period):
    issued = Lot.objects.filter(period.in_period("created_at")).aggregate(
        points=Coalesce(Sum("points"), 0)
    )["points"]
    redeemed, expired = _taken(period.in_period("posting__created_at"))
    return {"issued": issued, "redeemed": redeemed, "expired": expired}


def liability_figures(period, point_value):
    """What members hold now, and the breakage estimated from the 12 months
    before the period's end."""
    held = Member.objects.aggregate(
        available=Coalesce(Sum("available"), 0), pending=Coalesce(Sum("pending"), 0)
    )
    year_before = rules.add_months(period.end, -12)
    redeemed, expired = _taken(
        Q(posting__created_at__gte=year_before, posting__created_at__lt=period.end)
    )
    breakage = _ratio(expired, redeemed + expired)
    liability = held["available"] * point_value
    return {
        "points": held["available"],
        "pending": held["pending"],
        "liability": liability,
        "breakage": breakage,
        "net_liability": (
            liability * (1 - breakage) if breakage is not None else liability
        ),
    }


def activation_funnel(period):
    """The members who joined in the period, step by step."""
    profile = ActionAward.objects.filter(
        member=OuterRef("pk"), action=ActionRule.Action.PROFILE
    )
    first_week = OrderActivity.objects.filter(
        member=OuterRef("pk"),
        cancelled_at__isnull=True,
        placed_at__gte=OuterRef("joined_at"),
        placed_at__lte=OuterRef("joined_at") + timedelta(days=ACTIVATION_DAYS),
    )
    # Signing up signs the shopper in: coming back counts from the next day on
    # (the last sign-in is what the account keeps).
    came_back = Q(user__last_login__gt=F("joined_at") + timedelta(days=1))
    counts = Member.objects.filter(period.in_period("joined_at")).aggregate(
        registered=Count("pk"),
        signed_in=Count("pk", filter=came_back),
        profile=Count("pk", filter=Q(Exists(profile))),
        bought=Count("pk", filter=Q(Exists(first_week))),
    )
    registered = counts["registered"]
    return [
        {
            "step": step,
            "members": counts[step],
            "share": _ratio(counts[step], registered),
        }
        for step in ("registered", "signed_in", "profile", "bought")
    ]


def campaign_results(period):
    """Per campaign: its orders, revenue and discount in the period (one query)."""
    rows = (
        CampaignOrder.objects.filter(period.in_period("placed_at"))
        .values("campaign_id")
        .annotate(
            orders=Count("pk"),
            revenue=Coalesce(Sum("revenue"), Decimal(0)),
            discount=Coalesce(Sum("discount"), Decimal(0)),
        )
        .order_by("-revenue")
    )
    found = {row["campaign_id"]: row for row in rows}
    campaigns = Campaign.objects.filter(
        Q(pk__in=found) | Q(starts_at__lt=period.end, ends_at__gt=period.start)
    ).order_by("-starts_at")
    return [
        {
            "campaign": campaign,
            "orders": found.get(campaign.pk, {}).get("orders", 0),
            "revenue": found.get(campaign.pk, {}).get("revenue", Decimal(0)),
            "discount": found.get(campaign.pk, {}).get("discount", Decimal(0)),
        }
        for campaign in campaigns
    ]


def points_flow(period):
    """Points issued, redeemed and expired per day (periods up to 31 days),
    week (up to 190) or month."""
    trunc = TruncDay if period.days <= 31 else TruncWeek
    if period.days > 190:
        trunc = TruncMonth
    issued = dict(
        Lot.objects.filter(period.in_period("created_at"))
        .annotate(bucket=trunc("created_at"))
        .values("bucket")
        .annotate(points=Sum("points"))
        .order_by()
        .values_list("bucket", "points")
    )
    taken = {}
    for bucket, kind, points in (
        Entry.objects.filter(
            period.in_period("posting__created_at"),
            posting__kind__in=[Posting.Kind.REDEEM, Posting.Kind.EXPIRE],
        )
        .annotate(bucket=trunc("posting__created_at"))
        .values("bucket", "posting__kind")
        .annotate(points=Sum(-F("available_change")))
        .order_by()
        .values_list("bucket", "posting__kind", "points")
    ):
        taken[(_day(bucket), kind)] = points
    buckets = sorted({_day(b) for b in issued} | {b for b, _kind in taken})
    issued = {_day(b): p for b, p in issued.items()}
    return [
        {
            "bucket": bucket,
            "issued": issued.get(bucket, 0),
            "redeemed": taken.get((bucket, Posting.Kind.REDEEM), 0),
            "expired": taken.get((bucket, Posting.Kind.EXPIRE), 0),
        }
        for bucket in buckets
    ]


def _day(value):
    """A truncated moment as a date (SQLite gives datetimes, as PostgreSQL)."""
    if isinstance(value, datetime):
        return (
            timezone.localtime(value).date()
            if timezone.is_aware(value)
            else value.date()
        )
    return value


def _month_index(day):
    return day.year * 12 + day.month - 1


def cohorts(period, months=COHORTS):
    """Members who joined in each of the ``months`` months up to the period's
    end, and the share of them who ordered in each month since (two queries)."""
    last = _month_index(period.last)
    first = last - months + 1
    start = timezone.make_aware(
        datetime.combine(date(first // 12, first % 12 + 1, 1), time.min)
    )
    sizes = {
        _month_index(_day(month)): n
        for month, n in Member.objects.filter(
            joined_at__gte=start, joined_at__lt=period.end
        )
        .annotate(month=TruncMonth("joined_at"))
        .values("month")
        .annotate(n=Count("pk"))
        .order_by()
        .values_list("month", "n")
    }
    ordered = {}
    for cohort, month, n in (
        OrderActivity.objects.filter(
            member__joined_at__gte=start,
            member__joined_at__lt=period.end,
            placed_at__lt=period.end,
            cancelled_at__isnull=True,
        )
        .annotate(cohort=TruncMonth("member__joined_at"), month=TruncMonth("placed_at"))
        .values("cohort", "month")
        .annotate(n=Count("member_id", distinct=True))
        .order_by()
        .values_list("cohort", "month", "n")
    ):
        ordered[(_month_index(_day(cohort)), _month_index(_day(month)))] = n
    rows = []
    for index in range(first, last + 1):
        size = sizes.get(index, 0)
        rows.append(
            {
                "month": date(index // 12, index % 12 + 1, 1),
                "members": size,
                "shares": [
                    _ratio(ordered.get((index, index + k), 0), size)
                    if index + k <= last
                    else None
                    for k in range(months)
                ],
            }
        )
    return rows


def segment_trend(period):
    """Per scoring run in the period: members per activity segment, and those
    with a churn risk of 70 or more (from the runs' summaries: one query)."""
    from .models import ScoringRun

    rows = []
    for when, summary in (
        ScoringRun.objects.filter(period.in_period("scored_at"))
        .order_by("scored_at")
        .values_list("scored_at", "summary")
    ):
        activity = summary.get("activity", {})
        rows.append(
            {
                "run": when,
                **{code: activity.get(code, 0) for code in TREND_SEGMENTS},
                "high_risk": sum(summary.get("churn", [0] * 11)[7:]),
            }
        )
    return rows


TREND_SEGMENTS = ("active", "cooling", "at_risk", "dormant")


def segment_counts(run):
    """``[(dimension, segment, label, members)]`` for every segment, from the
    run's summary (zeros without a run)."""
    summary = run.summary if run is not None else {}
    names = dict(SEGMENT_CHOICES)
    return [
        (
            dimension,
            code,
            names[f"{dimension}:{code}"],
            summary.get(dimension, {}).get(code, 0),
        )
        for dimension, _label, choices in SEGMENT_DIMENSIONS
        for code, _name in choices
    ]


def rfm_grid(run):
    """Members of the run per recency (rows, 5 to 1) and FM (columns, 1 to 5)."""
    grid = {(r, fm): 0 for r in range(1, 6) for fm in range(1, 6)}
    if run is not None:
        for r, f, m, n in (
            MemberScore.objects.filter(
                scored_at=run.scored_at, recency_score__isnull=False
            )
            .values("recency_score", "frequency_score", "monetary_score")
            .annotate(n=Count("member"))
            .order_by()
            .values_list("recency_score", "frequency_score", "monetary_score", "n")
        ):
            grid[(r, (f + m + 1) // 2)] += n
    return [
        {"recency": r, "cells": [grid[(r, fm)] for fm in range(1, 6)]}
        for r in range(5, 0, -1)
    ]


def compare(current, previous):
    """``{name: (now, before, change)}`` for the numeric figures of two periods;
    the change is a difference for rates and a relative change otherwise."""
    found = {}
    for name, value in current.items():
        before = previous.get(name)
        change = None
        if isinstance(value, (int, Decimal)) and isinstance(before, (int, Decimal)):
            if name.endswith(("_rate", "multiple")):
                change = value - before
            elif before:
                change = (Decimal(value) - Decimal(before)) / Decimal(before)
        found[name] = (value, before, change)
    return found
