"""Earn rules: how many points an order line earns. Pure: no ORM, no writes.

Points are computed per line on the line's price after discounts (so the part of an
order paid with points, a discount, earns nothing, and neither does shipping), at the
owner's rate and rounding, times the multiplier of the best earn rule whose Oscar range
holds the line's product. Each result names the rule and version that produced it,
stored with the points so a later refund reverses exactly what the line earned, even
after the owner changed the rule. Which rules hold which products is looked up by
:mod:`oscar_loyalty.rules_lookup`; this module only does the arithmetic.
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


@dataclass(frozen=True)
class Rule:
    """What a lot records of the rule that earned it, and the rule's multiplier.

    A plain value rather than the ``EarnRule`` row, so the arithmetic stays testable
    without a database and a rule edited later cannot change a past result.
    """

    code: str
    version: int
    multiplier: Decimal = Decimal(1)


#: Lines whose product no active rule holds earn at the base rate.
BASE = Rule(BASE_RULE, 0, Decimal(1))


def best_rule(rules):
    """The rule with the highest multiplier; the first given wins a tie.

    Callers pass rules in a fixed order (multiplier, then id), so a tie resolves the
    same way at checkout, on the product page and in the basket. ``BASE`` if none.
    """
    best = None
    for rule in rules:
        if best is None or rule.multiplier > best.multiplier:
            best = rule
    return best or BASE


def points_for_amount(amount, *, rate=None, rounding=None, multiplier=1):
    """Whole points for a money amount: ``amount × rate × multiplier``, rounded once.

    Rounding the product once (not the base points, then the bonus) means ×1.5 on
    9.99 at rate 1 earns 14 points, not ``floor(9) × 1.5`` = 13.
    """
    rate = Decimal(str(loyalty_settings.EARN_RATE if rate is None else rate))
    rounding = loyalty_settings.EARN_ROUNDING if rounding is None else rounding
    exact = Decimal(amount) * rate * Decimal(str(multiplier))
    points = exact.to_integral_value(rounding=ROUNDINGS[rounding])
    return max(int(points), 0)


def order_line_points(
    lines,
    *,
    order_total,
    includes_tax=None,
    minimum=None,
    rules=None,
    tier_multiplier=1,
):
    """Points per line for ``lines`` of (line_id, price_excl_tax, price_incl_tax).

    Prices are the lines' totals after discounts. An order whose ``order_total``
    (the same basis, shipping excluded) is below the owner's minimum earns nothing.
    ``rules`` maps a line id to the :class:`Rule` that applies to it; other lines
    earn at the base rate under :data:`BASE`. The member's ``tier_multiplier``
    multiplies the rule's (×2 rule, ×1.5 tier: ×3), rounded once. Lines earning zero
    points are left out.
    """
    includes_tax = (
        loyalty_settings.EARN_INCLUDES_TAX if includes_tax is None else includes_tax
    )
    minimum = Decimal(
        str(loyalty_settings.EARN_MINIMUM_ORDER if minimum is None else minimum)
    )
    if Decimal(order_total) < minimum:
        return []
    rules = rules or {}
    results = []
    for line_id, excl_tax, incl_tax in lines:
        rule = rules.get(line_id, BASE)
        amount = incl_tax if includes_tax else excl_tax
        multiplier = Decimal(str(rule.multiplier)) * Decimal(str(tier_multiplier))
        points = points_for_amount(amount, multiplier=multiplier)
        if points > 0:
            results.append(LinePoints(line_id, points, rule.code, rule.version))
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
