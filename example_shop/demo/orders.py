"""Order histories for the five shoppers, placed the way Oscar's checkout places them.

Each order goes through a real basket (the shopper's pricing strategy, offers
applied), Oscar's shipping ``Repository``, ``OrderTotalCalculator`` and
``OrderCreator``, so stock is allocated and ``order_placed`` is sent: the loyalty
plugin hears about demo orders exactly as about real ones. The order is created
with its historical ``date_placed`` (``OrderCreator`` passes extra fields through to
the ``Order``), so signal receivers already see the right date. Statuses then walk
Oscar's pipeline with its ``EventHandler`` (sending ``order_status_changed``), and
the status changes and the basket are back-dated to match.

Everything is deterministic: a ``random.Random`` seeded per shopper draws the plan
(ages in days, products, quantities, statuses), and dates are computed from
``timezone.now()`` at run time, so a demo loaded today looks like one loaded a year
ago. Order numbers ``DEMO-<USERNAME>-<nnn>`` are the natural key: a re-run skips
every order that exists.
"""

import random
from dataclasses import dataclass
from datetime import timedelta

from django.utils import timezone
from oscar.core.loading import get_class, get_model

from oscar_loyalty.exceptions import LoyaltyError
from oscar_loyalty.services.holds import hold_points
from oscar_loyalty.services.members import get_or_create_member

from .catalogue import product_specs

Applicator = get_class("offer.applicator", "Applicator")
Basket = get_model("basket", "Basket")
EventHandler = get_class("order.processing", "EventHandler")
Order = get_model("order", "Order")
OrderCreator = get_class("order.utils", "OrderCreator")
OrderTotalCalculator = get_class("checkout.calculators", "OrderTotalCalculator")
Product = get_model("catalogue", "Product")
Repository = get_class("shipping.repository", "Repository")
Selector = get_class("partner.strategy", "Selector")
ShippingAddress = get_model("order", "ShippingAddress")
UserAddress = get_model("address", "UserAddress")


@dataclass(frozen=True)
class Profile:
    """How a shopper buys: how many orders, between which ages, what they like."""

    orders: int
    oldest_days: int
    newest_days: int
    favourites: tuple
    # Order index (1 = oldest) → final status, for the cases a demo must show.
    forced: tuple = ()
    # Order index → points the shopper paid with at checkout.
    redeem: tuple = ()


PROFILES = {
    "mei": Profile(
        15,
        540,
        1,
        ("green", "oolong", "teaware"),
        ((4, "Refunded"), (9, "Cancelled"), (14, "Shipped"), (15, "Pending")),
        # Points paid on a cancelled order (given back), a completed and a new one.
        redeem=((9, 500), (12, 1000), (15, 500)),
    ),
    "wei": Profile(7, 500, 20, ("oolong", "green", "gifts"), ((3, "Refunded"),)),
    "li": Profile(5, 545, 320, ("green", "ceramics"), ((2, "Cancelled"),)),
    "chen": Profile(1, 4, 4, ("teaware",), ((1, "Being processed"),)),
    "zhang": Profile(3, 420, 45, ("teaware", "ceramics")),
}

# The steps from "Pending" to each final status, following
# OSCAR_ORDER_STATUS_PIPELINE, and how long after placing each step happened.
PATHS = {
    "Pending": (),
    "Being processed": ("Being processed",),
    "Shipped": ("Being processed", "Shipped"),
    "Complete": ("Being processed", "Shipped", "Complete"),
    "Cancelled": ("Cancelled",),
    "Refunded": ("Being processed", "Shipped", "Complete", "Refunded"),
}
STEP_DELAYS = {
    "Being processed": timedelta(hours=5),
    "Shipped": timedelta(days=1, hours=3),
    "Complete": timedelta(days=5),
    "Cancelled": timedelta(hours=2),
    "Refunded": timedelta(days=16),
}
TEA_CATEGORIES = ("green", "oolong")


@dataclass(frozen=True)
class PlannedOrder:
    number: str
    days_ago: int
    minutes_earlier: int
    lines: tuple  # ((upc, quantity), ...)
    status: str
    redeem: int = 0


def _status_for_age(days, rng):
    """Recent orders are still moving through the pipeline; old ones are done.

    Cancelled and refunded orders are few and chosen by hand (``Profile.forced``),
    so every demo shows each status without a dice roll deciding it.
    """
    if days < 2:
        return rng.choice(("Pending", "Pending", "Being processed"))
    if days < 7:
        return rng.choice(("Being processed", "Shipped", "Shipped"))
    if days < 21:
        return rng.choice(("Shipped", "Complete", "Complete"))
    return "Complete"


def plan_orders(username, profile):
    """Draw a shopper's whole order history from a generator seeded with the name.

    The full plan is drawn on every run, whether or not its orders exist, so the
    n-th order always has the same age, lines and status.
    """
    rng = random.Random(f"lotus-demo-orders-{username}")
    by_category = {}
    for upc, key, *_rest in product_specs():
        by_category.setdefault(key, []).append(upc)
    categories = list(by_category)

    if profile.orders == 1:
        ages = [profile.oldest_days]
    else:
        middle = rng.sample(
            range(profile.newest_days + 1, profile.oldest_days), profile.orders - 2
        )
        ages = sorted([profile.oldest_days, profile.newest_days, *middle], reverse=True)

    forced = dict(profile.forced)
    redeem = dict(profile.redeem)
    plan = []
    for index, days in enumerate(ages, 1):
        count = rng.choices((1, 2, 3, 4), weights=(35, 35, 20, 10))[0]
        lines = {}
        while len(lines) < count:
            key = (
                rng.choice(profile.favourites)
                if rng.random() < 0.8
                else rng.choice(categories)
            )
            upc = rng.choice(by_category[key])
            quantity = rng.choice((1, 1, 2, 3)) if key in TEA_CATEGORIES else 1
            lines.setdefault(upc, quantity)
        status = _status_for_age(days, rng)
        plan.append(
            PlannedOrder(
                number=f"DEMO-{username.upper()}-{index:03d}",
                days_ago=days,
                minutes_earlier=rng.randint(0, 10 * 60),
                lines=tuple(lines.items()),
                status=forced.get(index, status),
                redeem=redeem.get(index, 0),
            )
        )
    return plan


def _place(user, address, planned, products, placed):
    """Place one order through a real basket; return it, or None if nothing is
    buyable any more (someone took the products off sale or out of stock)."""
    basket = Basket.objects.create(owner=user)
    basket.strategy = Selector().strategy(user=user)
    for upc, quantity in planned.lines:
        product = products.get(upc)
        if product is None:
            continue
        info = basket.strategy.fetch_for_product(product)
        if info.availability.is_purchase_permitted(quantity)[0]:
            basket.add_product(product, quantity)
    if basket.is_empty:
        basket.delete()
        return None
    if planned.redeem:
        _apply_points(user, basket, planned.redeem)
    Applicator().apply(basket, user)

    shipping_address = ShippingAddress()
    address.populate_alternative_model(shipping_address)
    shipping_address.save()
    method = Repository().get_default_shipping_method(
        basket=basket, shipping_addr=shipping_address, user=user
    )
    charge = method.calculate(basket)
    total = OrderTotalCalculator().calculate(basket, charge)
    order = OrderCreator().place_order(
        basket=basket,
        total=total,
        shipping_method=method,
        shipping_charge=charge,
        user=user,
        shipping_address=shipping_address,
        order_number=planned.number,
        date_placed=placed,
    )
    basket.submit()
    Basket.objects.filter(pk=basket.pk).update(
        date_created=placed, date_submitted=placed
    )
    UserAddress.objects.filter(pk=address.pk).update(
        num_orders_as_shipping_address=address.num_orders_as_shipping_address + 1
    )
    address.num_orders_as_shipping_address += 1
    return order


def _apply_points(user, basket, points):
    """Apply points to the basket as the shopper does on the basket page.

    The loyalty offer turns them into money off and the order captures them; if
    the shopper has fewer points than planned (a changed catalogue), they pay in
    full, as a real shopper would be told.
    """
    try:
        hold_points(
            member=get_or_create_member(user), basket_id=basket.id, points=points
        )
    except LoyaltyError:
        pass


def _walk_pipeline(order, final_status, placed, now):
    """Move the order to its final status one pipeline step at a time, like staff
    in the dashboard: stock is consumed on shipping and released on cancelling."""
    handler = EventHandler()
    for status in PATHS[final_status]:
        handler.handle_order_status_change(order, status)
        if status == "Shipped":
            handler.consume_stock_allocations(order)
        elif status == "Cancelled":
            handler.cancel_stock_allocations(order)
        order.status_changes.filter(new_status=status).update(
            date_created=min(placed + STEP_DELAYS[status], now)
        )


def load_orders(report, shoppers):
    """Place every planned order that does not exist yet.

    ``shoppers`` maps username → (user, saved address), as ``load_people`` returns.
    """
    report.start("Orders")
    now = timezone.now()
    upcs = [spec[0] for spec in product_specs()]
    products = {p.upc: p for p in Product.objects.filter(upc__in=upcs)}
    existing = set(
        Order.objects.filter(number__startswith="DEMO-").values_list(
            "number", flat=True
        )
    )
    for username, profile in PROFILES.items():
        user, address = shoppers[username]
        for planned in plan_orders(username, profile):
            if planned.number in existing:
                report.reused("orders", planned.number)
                continue
            placed = now - timedelta(
                days=planned.days_ago, minutes=planned.minutes_earlier
            )
            order = _place(user, address, planned, products, placed)
            if order is None:
                report.add("orders", "skipped", f"{planned.number}: nothing buyable")
                continue
            _walk_pipeline(order, planned.status, placed, now)
            report.created(
                "orders",
                f"{order.number} {timezone.localtime(placed):%Y-%m-%d} {order.status} "
                f"¥{order.total_incl_tax}",
            )
    report.finish_section()
