"""Member coupons under real concurrency: several OS processes at once.

A single-use coupon spent by several checkouts at once, one idempotency key issued
by several workers, a birthday run started twice (a double beat) and the voucher
throttle's counters hit together. Each test commits its fixtures in the test
process, starts its processes with :func:`tests.concurrency.run_in_processes` and
checks the rows they leave; each says in a comment what would break without the
protection it exercises.

PostgreSQL only: SQLite's row locks are a no-op, so a race there proves nothing.
Run with ``DATABASE_URL=postgres://postgres@127.0.0.1:5432/<name>``.
"""

import multiprocessing
from collections import Counter
from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from django.utils import timezone, translation
from django.utils.dateparse import parse_datetime
from django.utils.translation import gettext
from oscar.core.loading import get_class, get_model

from oscar_loyalty.conf import loyalty_settings
from oscar_loyalty.coupons import attempts, record_attempt
from oscar_loyalty.models import AttemptCounter, CouponDesign, Member, MemberCoupon
from oscar_loyalty.services import coupons
from oscar_loyalty.services.members import (
    create_missing_members,
    get_or_create_member,
)
from tests.concurrency import run_in_processes
from tests.factories import ProductFactory, UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

Applicator = get_class("offer.applicator", "Applicator")
Basket = get_model("basket", "Basket")
Order = get_model("order", "Order")
OrderCreator = get_class("order.utils", "OrderCreator")
OrderDiscount = get_model("order", "OrderDiscount")
OrderTotalCalculator = get_class("checkout.calculators", "OrderTotalCalculator")
Repository = get_class("shipping.repository", "Repository")
Selector = get_class("partner.strategy", "Selector")
StockRecord = get_model("partner", "StockRecord")
Voucher = get_model("voucher", "Voucher")
VoucherApplication = get_model("voucher", "VoucherApplication")

CHECKOUTS = 4
ROUNDS = 3
ISSUERS = 8
BEATS = 4
COUNTERS = 8
ATTEMPTS_EACH = 50
BIRTHDAY_MEMBERS = 300


# What the child processes run (module level, so they can import it by name) -----------


def process_index():
    """This process's index in :func:`run_in_processes` (``run_in_processes-<i>``)."""
    return int(multiprocessing.current_process().name.rpartition("-")[2])


def place_orders(baskets, user_pk):
    """Check out this process's baskets (``baskets[index]``), one after another."""
    user = get_user_model().objects.get(pk=user_pk)
    return [place_order(basket_pk, user) for basket_pk in baskets[process_index()]]


def place_order(basket_pk, user):
    """Place an order from the basket the way Oscar's checkout does: offers
    applied, default shipping, ``OrderCreator``.

    Returns ``("placed", order number, coupon discount seen)`` or, when Oscar's
    ``OrderCreator`` refuses the basket's voucher, ``("refused", message, coupon
    discount seen)``.
    """
    basket = Basket.objects.get(pk=basket_pk)
    basket.strategy = Selector().strategy(user=user)
    Applicator().apply(basket, user)
    seen = sum((d["discount"] for d in basket.voucher_discounts), Decimal("0.00"))
    method = Repository().get_default_shipping_method(basket=basket, user=user)
    charge = method.calculate(basket)
    total = OrderTotalCalculator().calculate(basket, charge)
    try:
        order = OrderCreator().place_order(
            basket=basket,
            total=total,
            shipping_method=method,
            shipping_charge=charge,
            user=user,
            order_number=f"RACE-{basket.pk}",
        )
    except ValueError as refusal:
        return ("refused", str(refusal), seen)
    basket.submit()
    return ("placed", order.number, seen)


def issue_with_keys(design_pk, keys):
    """Issue the design to each ``(member pk, key)`` of ``keys``, in order."""
    design = CouponDesign.objects.get(pk=design_pk)
    return [
        coupons.issue_coupon(
            member=Member.objects.get(pk=member_pk), design=design, key=key
        ).pk
        for member_pk, key in keys
    ]


def issue_birthdays(today):
    return coupons.issue_birthday_coupons(today=date.fromisoformat(today))


def count_attempts(key, now, times):
    now = parse_datetime(now)
    return [record_attempt(key, now=now) for _ in range(times)]


# Fixtures and checks (the test process) -----------------------------------------------


def run(func, n, **kwargs):
    """Start ``n`` processes; their return values, or fail on any error."""
    outcomes = run_in_processes(func, n, **kwargs)
    assert [outcome.error for outcome in outcomes if not outcome.ok] == []
    return [outcome.value for outcome in outcomes]


def make_design(purpose=CouponDesign.Purpose.BIRTHDAY, **fields):
    return CouponDesign.objects.create(
        name=f"{purpose} treat",
        purpose=purpose,
        benefit_type=CouponDesign.BenefitType.FIXED,
        value=Decimal("20"),
        minimum_spend=Decimal("50"),
        valid_days=30,
        **fields,
    )


def new_member():
    return get_or_create_member(UserFactory())


def oscar(msgid):
    """Oscar's message in the shop's language (its English says "coupon")."""
    with translation.override(settings.LANGUAGE_CODE):
        return gettext(msgid)


def assert_no_orphan_vouchers(design):
    """Every voucher of the design's offer belongs to a member coupon."""
    vouchers = Voucher.objects.filter(offers=design.offer_id)
    assert not vouchers.filter(loyalty_coupon__isnull=True).exists()
    assert vouchers.count() == MemberCoupon.objects.filter(design=design).count()


# One single-use coupon, several checkouts -------------------------------------------


def test_checkouts_racing_for_one_single_use_coupon_use_it_once():
    """Given a member's three single-use coupons (20 off 50 each) and, for each
    coupon, four of the member's baskets holding it, when four processes check out
    at once, coupon after coupon, through Oscar's OrderCreator, then each coupon
    is spent by one order with its discount once, and Oscar refuses the other three
    checkouts with "already used", rolling them back whole.

    Oscar's OrderCreator locks the basket's vouchers (SELECT … FOR UPDATE) and then
    asks ``is_available_to_user``, which for a single-use voucher means "no
    application yet": the later checkouts wait for the first one's commit and see
    its application. Without that lock (or with coupons issued multi-use) the four
    checkouts pass the check before any commits: four orders with 20 off per
    coupon, four applications, and num_orders short by the lost updates.
    """
    product = ProductFactory(stockrecord__price=Decimal("100.00"))
    design = make_design()
    member = new_member()
    user = member.user
    issued = [
        coupons.issue_coupon(member=member, design=design, key=f"race:{number}")
        for number in range(ROUNDS)
    ]
    baskets = [[] for _ in range(CHECKOUTS)]
    for coupon in issued:
        for of_process in baskets:
            basket = Basket.objects.create(owner=user)
            basket.strategy = Selector().strategy(user=user)
            basket.add_product(product, 1)
            basket.vouchers.add(coupon.voucher)
            of_process.append(basket.pk)

    results = run(place_orders, CHECKOUTS, args=(baskets, user.pk))

    already_used = oscar("This voucher has already been used")
    for number, coupon in enumerate(issued):
        outcomes = [of_process[number] for of_process in results]
        statuses = Counter(status for status, _, _ in outcomes)
        assert statuses == {"placed": 1, "refused": CHECKOUTS - 1}, outcomes
        ((_, order_number, seen),) = [o for o in outcomes if o[0] == "placed"]
        assert seen == Decimal("20.00")
        refusals = {message for status, message, _ in outcomes if status != "placed"}
        assert refusals == {already_used}
        order = Order.objects.get(number=order_number)
        assert order.user_id == user.pk
        coupon.voucher.refresh_from_db()
        assert coupon.voucher.num_orders == 1
        (application,) = VoucherApplication.objects.filter(voucher=coupon.voucher)
        assert application.order_id == order.pk
        (discount,) = OrderDiscount.objects.filter(voucher_id=coupon.voucher.pk)
        assert discount.order_id == order.pk
        assert (discount.offer_id, discount.amount) == (
            design.offer_id,
            Decimal("20.00"),
        )
        assert order.total_incl_tax == (
            order.basket_total_before_discounts_incl_tax
            - Decimal("20.00")
            + order.shipping_incl_tax
        )
        assert coupon.state() == "used"
    # The refused checkouts left nothing: no order, no discount, no stock taken.
    assert Order.objects.filter(number__startswith="RACE-").count() == ROUNDS
    assert OrderDiscount.objects.filter(offer_id=design.offer_id).count() == ROUNDS
    assert StockRecord.objects.get(product=product).num_allocated == ROUNDS


# One key, several issuers -------------------------------------------------------------


def test_issuing_the_same_keys_at_once_makes_one_coupon_per_key():
    """When eight workers issue the same welcome keys (one per member, 20 members,
    in the same order) at once, then each member has one coupon and one voucher,
    and every worker returns the same coupons.

    ``issue_coupon`` locks the member row before looking the key up, so the others
    wait and then find the first one's coupon. Without the lock they would find no
    coupon and insert a voucher each; the key's unique constraint would then make
    the late ones fail with an IntegrityError instead of returning the coupon.
    """
    design = make_design(CouponDesign.Purpose.WELCOME)
    members = [new_member() for _ in range(20)]
    keys = [(member.pk, f"welcome:{design.pk}:{member.pk}") for member in members]

    returned = run(issue_with_keys, ISSUERS, args=(design.pk, keys))

    issued = dict(MemberCoupon.objects.values_list("key", "pk"))
    assert set(issued) == {key for _, key in keys}
    assert returned == [[issued[key] for _, key in keys]] * ISSUERS
    by_member = Counter(MemberCoupon.objects.values_list("member_id", flat=True))
    assert by_member == dict.fromkeys((member.pk for member in members), 1)
    assert Voucher.objects.count() == len(members)
    assert_no_orphan_vouchers(design)


# A birthday run started twice ---------------------------------------------------------


def members_born_on(day, count, tag):
    """``count`` members with their birthday on ``day``'s month and day (in bulk)."""
    users = get_user_model().objects.bulk_create(
        get_user_model()(
            username=f"{tag}{index}",
            email=f"{tag}{index}@example.com",
            password=make_password(None),
        )
        for index in range(count)
    )
    ids = [user.pk for user in users]
    create_missing_members(get_user_model().objects.filter(pk__in=ids))
    members = Member.objects.filter(user_id__in=ids)
    members.update(birth_month=day.month, birth_day=day.day)
    return set(members.values_list("pk", flat=True))


def test_a_double_birthday_beat_gives_each_member_one_coupon():
    """Given 300 members whose birthday coupon is due and 20 whose is not, when four
    workers run the birthday job at once, then each of the 300 has exactly one
    coupon with this year's key, the others none, the workers' counts add up to
    300, and every voucher of the design belongs to a coupon.

    Each chunk locks its members in primary-key order, skips keys already used and
    inserts vouchers, offer links and coupons in one transaction. Without the locks
    the workers would all see the keys free and insert; the keys' unique constraint
    would refuse the late ones, and only because the whole chunk rolls back are
    their vouchers not left behind without a coupon (orphans this test counts).
    Counted twice, the issues would add up to more than 300.
    """
    today = date(2027, 3, 14)
    birthday = today + timedelta(days=loyalty_settings.BIRTHDAY_DAYS_AHEAD)
    design = make_design()
    due = members_born_on(birthday, BIRTHDAY_MEMBERS, "born")
    not_due = members_born_on(birthday + timedelta(days=30), 20, "later")

    counts = run(issue_birthdays, BEATS, args=(today.isoformat(),))

    assert sum(counts) == BIRTHDAY_MEMBERS
    issued = MemberCoupon.objects.filter(design=design)
    per_member = Counter(issued.values_list("member_id", flat=True))
    assert set(per_member) == due
    assert set(per_member.values()) == {1}
    assert not issued.filter(member_id__in=not_due).exists()
    assert set(issued.values_list("key", flat=True)) == {
        f"birthday:{design.pk}:{pk}:{birthday.year}" for pk in due
    }
    assert_no_orphan_vouchers(design)


# The voucher throttle's counters ------------------------------------------------------


def test_attempt_counters_count_every_attempt_made_at_once():
    """When eight processes record 50 attempts each for one key at once, then the
    counter ends at 400 and each attempt saw its own count, 1 to 400.

    ``record_attempt`` is one INSERT … ON CONFLICT DO UPDATE SET count = count + 1.
    Counting in Python (read, add one, save) would lose increments and hand two
    attempts the same count; inserting without ON CONFLICT would fail with an
    IntegrityError in every process but the first to insert.
    """
    key = "voucher:ip:203.0.113.7"
    now = timezone.now()  # one window for all, even if the test crosses its end

    returned = run(count_attempts, COUNTERS, args=(key, now.isoformat(), ATTEMPTS_EACH))

    total = COUNTERS * ATTEMPTS_EACH
    assert sorted(count for counts in returned for count in counts) == list(
        range(1, total + 1)
    )
    assert attempts([key], now=now) == {key: total}
    assert AttemptCounter.objects.filter(key=key).count() == 1
