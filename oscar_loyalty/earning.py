"""Earn rules: how many points an order line earns. Pure: no ORM, no writes.

Points are computed per line on the line's price after discounts (so the part of an
order paid with points, a discount, earns nothing, and neither does shipping), at the
owner's rate and rounding. Each result names the rule that produced it, stored with
the points so a later refund reverses exactly what the line earned.
"""

from dataclasses import dataclass
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal

from .conf import loyalty_settings

ROUNDINGS = {"floor": ROUND_FLOOR, "round": ROUND_HALF_UP, "ceil": ROUND_CEILING}
BASE_RULE = "base"


@dataclass(frozen=True)
class LinePoints:
    line_id: int
    points: int
    rule: str
    rule_version: int


def points_for_amount(amount, *, rate=None, rounding=None):
    """Whole points for a money amount: ``amount × rate``, rounded as configured."""
    rate = Decimal(str(loyalty_settings.EARN_RATE if rate is None else rate))
    rounding = loyalty_settings.EARN_ROUNDING if rounding is None else rounding
    points = (Decimal(amount) * rate).to_integral_value(rounding=ROUNDINGS[rounding])
    return max(int(points), 0)


def order_line_points(lines, *, order_total, includes_tax=None, minimum=None):
    """Points per line for ``lines`` of (line_id, price_excl_tax, price_incl_tax).

    Prices are the lines' totals after discounts. An order whose ``order_total``
    (the same basis, shipping excluded) is below the owner's minimum earns nothing.
    Lines earning zero points are left out.
    """
    includes_tax = (
        loyalty_settings.EARN_INCLUDES_TAX if includes_tax is None else includes_tax
    )
    minimum = Decimal(
        str(loyalty_settings.EARN_MINIMUM_ORDER if minimum is None else minimum)
    )
    if Decimal(order_total) < minimum:
        return []
    results = []
    for line_id, excl_tax, incl_tax in lines:
        points = points_for_amount(incl_tax if includes_tax else excl_tax)
        if points > 0:
            results.append(LinePoints(line_id, points, BASE_RULE, 0))
    return results


def refund_share(points, line_quantity, refunded_before, refunded_now):
    """Points to reverse for ``refunded_now`` more items of a line earning ``points``.

    Cumulative, so partial refunds add up to exactly ``points`` when every item of
    the line is refunded, whatever the order and size of the refunds.
    """
    if line_quantity <= 0:
        return 0
    after = min(refunded_before + refunded_now, line_quantity)
    before = min(refunded_before, line_quantity)
    return points * after // line_quantity - points * before // line_quantity
