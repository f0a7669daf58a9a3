"""One database's basket figures; run by :mod:`bench.basket` in a subprocess.

``python -m bench._basket_worker --database-url URL --label NAME`` sets Django up on
``URL``, migrates it, makes the programme of a real shop (tiers with a discount
and free shipping, a running member-day campaign for Gold), a Gold member with a
history, two usable coupons and three products in the basket, then renders the
basket page with Django's test ``Client``, the plugin on and off alternately.
"""

import argparse
import statistics
import sys
import time
from datetime import timedelta
from decimal import Decimal

from bench import _django, emit, info

HISTORY = 100


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench._basket_worker")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--label", required=True, help="suffix of the figure names")
    parser.add_argument("--scale", type=int, default=60, help="renders measured")
    parser.add_argument("--warmup", type=int, default=5, help="renders not measured")
    return parser.parse_args(argv)


def programme():
    """Tiers, a running campaign and a Gold member's signed-in client."""
    from django.test import Client
    from django.utils import timezone

    from bench.loyalty import build_history
    from oscar_loyalty.models import Campaign, CouponDesign, Member, Tier
    from oscar_loyalty.services import coupons
    from oscar_loyalty.services.members import get_or_create_member
    from tests.checkout import add_to_basket
    from tests.factories import ProductFactory, UserFactory

    Tier.objects.create(code="regular", name="Regular", rank=0)
    Tier.objects.create(
        code="silver", name="Silver", rank=1, threshold=1000, discount_percent=5
    )
    gold = Tier.objects.create(
        code="gold",
        name="Gold",
        rank=2,
        threshold=4000,
        discount_percent=8,
        free_shipping=True,
        points_multiplier=Decimal("1.5"),
    )
    now = timezone.now()
    campaign = Campaign.objects.create(
        name="Member day",
        kind=Campaign.Kind.DISCOUNT,
        discount_percent=5,
        starts_at=now - timedelta(hours=1),
        ends_at=now + timedelta(days=30),
    )
    campaign.tiers.add(gold)
    design = CouponDesign.objects.create(
        name="Birthday treat",
        purpose=CouponDesign.Purpose.BIRTHDAY,
        benefit_type=CouponDesign.BenefitType.FIXED,
        value=20,
        minimum_spend=50,
    )
    user = UserFactory()
    member = build_history(get_or_create_member(user), HISTORY)
    Member.objects.filter(pk=member.pk).update(tier=gold)
    for index in range(2):
        coupons.issue_coupon(member=member, design=design, key=f"bench:{index}")
    client = Client()
    client.force_login(user)
    for title in ("Da Hong Pao", "Long Jing", "Tea cup"):
        add_to_basket(client, ProductFactory(title=title, stockrecord__stock=10**6))
    return client


def render(client):
    from django.urls import reverse

    response = client.get(reverse("basket:summary"))
    if response.status_code != 200:
        raise RuntimeError(f"the basket page answered {response.status_code}")
    return response


def main(argv=None):
    args = parse_args(argv)
    _django.setup(args.database_url)
    _django.migrate(args.label)

    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from bench.loyalty import plugin_disabled

    client = programme()
    page = render(client).content.decode()
    for expected in ("Gold member", "Member day"):
        if expected not in page:
            raise RuntimeError(f"the basket does not show {expected!r}")
    with plugin_disabled(templates=True) as names:
        info(f"{args.label}: plugin off = without {', '.join(names)}")
        off_page = render(client).content.decode()
        if "Gold member" in off_page:
            raise RuntimeError("the tier offer still applies with the plugin off")
    queries = {}
    for enabled in (True, False):
        with plugin_disabled(templates=True) if not enabled else _nothing():
            with CaptureQueriesContext(connection) as captured:
                render(client)
            queries[enabled] = len(captured)
    timings = {True: [], False: []}
    for index in range(args.warmup + args.scale):
        pair = (True, False) if index % 2 == 0 else (False, True)
        for enabled in pair:
            with plugin_disabled(templates=True) if not enabled else _nothing():
                started = time.perf_counter()
                render(client)
                elapsed = (time.perf_counter() - started) * 1000
            if index >= args.warmup:
                timings[enabled].append(elapsed)
    on, off = statistics.median(timings[True]), statistics.median(timings[False])
    info(f"{args.label}: median {on:.1f} ms with the plugin, {off:.1f} ms without")
    with_offer, without = oscar_offer_timings(client, args)
    info(
        f"{args.label}: plugin off, median {with_offer:.1f} ms with one plain Oscar "
        f"offer, {without:.1f} ms without"
    )
    emit(f"basket_render_ms_on_{args.label}", f"{on:.1f}")
    emit(f"basket_render_ms_off_{args.label}", f"{off:.1f}")
    emit(f"basket_queries_on_{args.label}", queries[True])
    emit(f"basket_queries_off_{args.label}", queries[False])
    emit(f"basket_loyalty_ratio_{args.label}", f"{on / off:.3f}")
    emit(f"basket_oscar_offer_ratio_{args.label}", f"{with_offer / without:.3f}")
    return 0


def plain_oscar_offer():
    """A shop's own SITE offer, no plugin part in it: 5 % off everything."""
    from oscar.core.loading import get_model

    ConditionalOffer = get_model("offer", "ConditionalOffer")
    Condition = get_model("offer", "Condition")
    Benefit = get_model("offer", "Benefit")
    Range = get_model("offer", "Range")

    everything = Range.objects.create(
        name="Everything (bench)", includes_all_products=True
    )
    return ConditionalOffer.objects.create(
        name="Shop offer (bench)",
        offer_type=ConditionalOffer.SITE,
        status=ConditionalOffer.SUSPENDED,
        condition=Condition.objects.create(
            range=everything, type=Condition.COUNT, value=1
        ),
        benefit=Benefit.objects.create(
            range=everything, type=Benefit.PERCENTAGE, value=5
        ),
    )


def oscar_offer_timings(client, args):
    """Median renders with the plugin off, with one plain Oscar offer open and
    without it (alternating pairs): what a single offer of Oscar's own costs the
    page, the floor under what the plugin's offers can cost."""
    from bench.loyalty import plugin_disabled

    offer = plain_oscar_offer()
    timings = {True: [], False: []}
    with plugin_disabled(templates=True):
        for index in range(args.warmup + args.scale):
            pair = (True, False) if index % 2 == 0 else (False, True)
            for open_ in pair:
                offer.unsuspend() if open_ else offer.suspend()
                started = time.perf_counter()
                page = render(client).content.decode()
                elapsed = (time.perf_counter() - started) * 1000
                if open_ and "Shop offer (bench)" not in page:
                    raise RuntimeError("the plain Oscar offer does not apply")
                if index >= args.warmup:
                    timings[open_].append(elapsed)
    offer.suspend()
    return statistics.median(timings[True]), statistics.median(timings[False])


def _nothing():
    import contextlib

    return contextlib.nullcontext()


if __name__ == "__main__":
    sys.exit(main())
