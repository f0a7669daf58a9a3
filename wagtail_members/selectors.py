"""Everything the member pages read of the loyalty programme, and nothing else.

``wagtail_members`` reads ``oscar_loyalty`` through this module only, and only
reads: no function here writes a row (not even a member account for a shopper
who has none yet). Each function runs a fixed number of queries, whatever the
number of tiers, rewards or entries.
"""

from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal

from django.db.models import Min, Sum
from django.db.models.functions import Coalesce
from django.utils import timezone

from oscar_loyalty import summaries
from oscar_loyalty.conf import loyalty_settings
from oscar_loyalty.models import Lot, MemberCoupon, Posting, Tier
from oscar_loyalty.redemption import Policy

#: A colour as editors may give it (the programme's own rule for tier colours).
COLOUR_PATTERN = summaries.HEX_COLOUR.pattern
EXPIRING_DAYS = summaries.EXPIRING_DAYS
#: Ledger entries and coupons shown on the member home page.
LATEST_ENTRIES = 5
ACTIVE_COUPONS = 5


@dataclass
class TierView:
    """A tier as the pages show it: the programme's rules (read-only here) with
    the editors' display data (:class:`wagtail_members.models.TierDisplay`)
    laid over the programme's own name, colour, badge and description."""

    code: str
    rank: int
    name: str
    threshold: Decimal
    points_multiplier: Decimal
    discount_percent: Decimal
    free_shipping: bool
    group_name: str
    colour: str
    text_colour: str
    badge: str
    badge_image: object = None
    description: str = ""

    @property
    def has_discount(self):
        return self.discount_percent > 0

    @property
    def has_bonus_points(self):
        return self.points_multiplier > 1


def _display_data():
    """{tier code: display data} in the reader's language, else the site's default
    language (editors translate display data like pages)."""
    from wagtail.models import Locale

    from .models import TierDisplay

    try:
        wanted = [Locale.get_active().pk, Locale.get_default().pk]
    except Locale.DoesNotExist:
        wanted = []
    found = {}
    for display in TierDisplay.objects.filter(locale__in=wanted).select_related(
        "badge_image"
    ):
        best = found.get(display.tier_code)
        if best is None or display.locale_id == wanted[0]:
            found[display.tier_code] = display
    return found


def _tier_view(tier, display):
    colour = (display.colour if display and display.colour else "") or tier.colour
    if not summaries.HEX_COLOUR.match(colour or ""):
        colour = summaries.DEFAULT_COLOUR
    return TierView(
        code=tier.code,
        rank=tier.rank,
        name=(display.display_name if display else "") or tier.name,
        threshold=tier.threshold,
        points_multiplier=tier.points_multiplier,
        discount_percent=tier.discount_percent,
        free_shipping=tier.free_shipping,
        group_name=tier.group_name,
        colour=colour,
        text_colour=summaries.readable_on(colour),
        badge=tier.badge,
        badge_image=display.badge_image if display else None,
        description=(display.short_description if display else "") or tier.description,
    )


def tiers():
    """Every tier, lowest rank first, as :class:`TierView`. Two queries."""
    displays = _display_data()
    return [
        _tier_view(tier, displays.get(tier.code))
        for tier in Tier.objects.order_by("rank")
    ]


def tiers_from(code, every=None):
    """The tiers at or above the tier ``code``: who gets a benefit meant for
    members from that tier on. Every tier for ""; none for a code no tier has
    (a tier the owner removed since). ``every``: :func:`tiers`, if read already."""
    every = tiers() if every is None else every
    if not code:
        return every
    start = next((tier.rank for tier in every if tier.code == code), None)
    if start is None:
        return []
    return [tier for tier in every if tier.rank >= start]


def request_tiers(request):
    """:func:`tiers`, read once per request (blocks on one page share them)."""
    if request is None:
        return tiers()
    cached = getattr(request, "_wagtail_members_tiers", None)
    if cached is None:
        cached = request._wagtail_members_tiers = tiers()
    return cached


def tier_choices():
    """(code, name) of the programme's tiers, lowest first: what an editor picks
    from (a minimum tier of a benefit page, the tier of display data)."""
    return list(Tier.objects.order_by("rank").values_list("code", "name"))


def tier_basis():
    """What qualifies for a tier: ``"spend"``, ``"points"`` or ``"orders"``."""
    return loyalty_settings.TIER_BASIS


def lowest_tier_of_groups(group_names, every=None):
    """The lowest-ranked tier whose group is one of ``group_names`` (a page
    restricted to Gold's and Diamond's groups is "for Gold members and above"),
    or None when none of them is a tier's group. ``every``: :func:`tiers`, if
    read already."""
    names = set(group_names)
    for tier in tiers() if every is None else every:
        if tier.group_name in names:
            return tier
    return None


@dataclass
class MemberSummary:
    """The signed-in shopper's programme at a glance (the member home page)."""

    is_member: bool
    number: str = ""
    available: int = 0
    spendable: int = 0
    pending: int = 0
    held: int = 0
    point_value: Decimal = Decimal(0)
    expiring_points: int = 0
    expiring_first: object = None
    expiring_days: int = EXPIRING_DAYS
    tier: TierView | None = None
    next_tier: TierView | None = None
    value: Decimal = Decimal(0)
    needed: Decimal = Decimal(0)
    progress_percent: int | None = None
    window_end: object = None
    basis: str = "spend"
    latest: list = field(default_factory=list)
    coupons: list = field(default_factory=list)


def member_summary(user, *, now=None):
    """A :class:`MemberSummary` of ``user`` (signed in), or None for visitors.

    A shopper without a member account yet gets an empty summary
    (``is_member`` False): reading creates nothing.
    """
    if user is None or not user.is_authenticated:
        return None
    now = now or timezone.now()
    member = summaries.own_member(user)
    if member.pk is None:
        return MemberSummary(is_member=False, basis=tier_basis())
    expiring = Lot.objects.filter(
        member=member,
        status=Lot.Status.ACTIVE,
        remaining__gt=0,
        expires_at__lte=now + timedelta(days=EXPIRING_DAYS),
    ).aggregate(points=Coalesce(Sum("remaining"), 0), first=Min("expires_at"))
    latest = list(
        Posting.objects.filter(member=member)
        .annotate(
            available_points=Coalesce(Sum("entries__available_change"), 0),
            pending_points=Coalesce(Sum("entries__pending_change"), 0),
        )
        .order_by("-created_at", "-id")[:LATEST_ENTRIES]
    )
    coupons = list(
        MemberCoupon.objects.usable(now)
        .filter(member=member)
        .select_related("voucher", "design", "design__product")
        .order_by("voucher__end_datetime", "pk")[:ACTIVE_COUPONS]
    )
    summary = MemberSummary(
        is_member=True,
        number=member.number,
        available=member.available,
        spendable=member.spendable,
        pending=member.pending,
        held=member.held,
        point_value=Policy.current().value_of(member.spendable),
        expiring_points=expiring["points"],
        expiring_first=expiring["first"],
        basis=tier_basis(),
        latest=latest,
        coupons=coupons,
    )
    panel = summaries.tier_panel(member, now)
    if panel is not None:
        views = {tier.code: tier for tier in tiers()}
        current, upcoming = panel["tier"], panel["next_tier"]
        summary.tier = views.get(current.code) if current else None
        summary.next_tier = views.get(upcoming.code) if upcoming else None
        summary.value = panel["progress"].value
        summary.needed = panel["needed"]
        summary.progress_percent = panel["bar"]["percent"] if panel["bar"] else None
        summary.window_end = panel["progress"].window_end
    return summary


def reward_offers(user, *, now=None, reward_id=None):
    """The rewards available now, as ``user`` sees them (price, stock, whether
    they can redeem it and if not why): ``oscar_loyalty.summaries.RewardOffer``.
    Visitors see the catalogue as a member without points. ``reward_id``
    narrows it down to one (the confirmation step)."""
    from oscar_loyalty.models import Member, Reward

    now = now or timezone.now()
    if user is not None and user.is_authenticated:
        member = summaries.own_member(user)
    else:
        member = Member()
    rewards = None
    if reward_id is not None:
        # An exact lookup: an id past the database's integers finds nothing.
        rewards = Reward.objects.filter(
            pk=reward_id, is_active=True, design__is_active=True
        )
    return summaries.reward_offers(member, now, rewards)


def spendable_points(user):
    """The points ``user`` can spend now (0 for visitors and non-members)."""
    if user is None or not user.is_authenticated:
        return 0
    member = summaries.own_member(user)
    return member.spendable if member.pk is not None else 0
