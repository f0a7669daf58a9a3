"""Points as money off at checkout: the owner's limits and the basket discount.

The shopper's choice is a :class:`~oscar_loyalty.models.Hold` keyed by basket
(Oscar recomputes a basket's offers on every request, so it must live in the
database). The programme's SITE offer (migration 0003) turns it into a discount
with :func:`apply_points_discount`, worked out afresh from the basket each time:
the points used are the hold, cut to the owner's limits for the basket as it is
now. :func:`capture_for_order` runs inside Oscar's ``OrderCreator`` transaction and
turns the hold into the order's redemption, so the order and the debit commit
together.

The limits are checked on the server from the basket and the balance; the number a
form sends is only a wish.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta
from decimal import ROUND_DOWN, Decimal, InvalidOperation

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from oscar.core.loading import get_class, get_classes, get_model

from .conf import loyalty_settings
from .exceptions import InvalidPoints, LoyaltyError
from .middleware import forget_points, may_hold_points, session_for
from .models import Hold

BasketDiscount, ZERO_DISCOUNT = get_classes(
    "offer.results", ["BasketDiscount", "ZERO_DISCOUNT"]
)
UnableToPlaceOrder = get_class("order.exceptions", "UnableToPlaceOrder")
Applicator = get_class("offer.applicator", "Applicator")
Selector = get_class("partner.strategy", "Selector")

logger = logging.getLogger(__name__)

CENT = Decimal("0.01")
#: Larger requests are refused before any arithmetic (no shop issues this many).
MAX_POINTS = 10**12


@dataclass(frozen=True)
class Policy:
    """The owner's redemption limits (``OSCAR_LOYALTY_REDEEM_*``)."""

    point_value: Decimal
    minimum_balance: int
    max_share: Decimal
    step: int

    @classmethod
    def current(cls):
        return cls(
            point_value=Decimal(str(loyalty_settings.REDEEM_POINT_VALUE)),
            minimum_balance=int(loyalty_settings.REDEEM_MINIMUM_BALANCE),
            max_share=Decimal(str(loyalty_settings.REDEEM_MAX_SHARE)),
            step=max(int(loyalty_settings.REDEEM_STEP), 1),
        )

    def value_of(self, points):
        """The money ``points`` are worth, in whole cents (rounded down)."""
        return (Decimal(points) * self.point_value).quantize(CENT, rounding=ROUND_DOWN)

    def to_step(self, points):
        """``points`` rounded down to a multiple of the step."""
        return max(int(points), 0) // self.step * self.step

    def points_for(self, amount):
        """The most points, in steps, whose value does not exceed ``amount``."""
        if self.point_value <= 0 or amount <= 0:
            return 0
        return self.to_step(
            (Decimal(amount) / self.point_value).to_integral_value(rounding=ROUND_DOWN)
        )

    def usable(self, points, basket_amount):
        """Of ``points`` applied, how many a basket worth ``basket_amount`` takes."""
        cap = self.points_for(Decimal(basket_amount) * self.max_share)
        return min(self.to_step(points), cap)


class RedemptionRefused(LoyaltyError):
    default_message = _("These points cannot be applied.")


class BelowMinimumBalance(RedemptionRefused):
    default_message = _(
        "You need at least %(minimum)s points to pay with points; you have "
        "%(spendable)s."
    )


class NotAStep(RedemptionRefused):
    default_message = _("Apply points in multiples of %(step)s.")


class EmptyBasket(RedemptionRefused):
    default_message = _("Your basket is empty: add something before applying points.")


class BasketTooSmall(RedemptionRefused):
    default_message = _(
        "Points can pay for at most %(share)s%% of a basket; this basket is too "
        "small for %(step)s points."
    )


class PointsSwitchedOff(RedemptionRefused):
    default_message = _("Paying with points is switched off in this shop just now.")


class GuestBasket(RedemptionRefused):
    default_message = _("Sign in to earn points and pay with them.")


def parse_points(raw):
    """A whole, positive number of points from form input, or :class:`InvalidPoints`.

    Accepts "1,000" and surrounding spaces; refuses fractions, signs, exponents,
    and numbers no balance could reach.
    """
    text = str(raw if raw is not None else "").strip().replace(",", "")
    if not text.isdigit():
        raise InvalidPoints()
    try:
        points = int(text)
    except (ValueError, InvalidOperation):  # pragma: no cover - isdigit() guards
        raise InvalidPoints() from None
    if points <= 0 or points > MAX_POINTS:
        raise InvalidPoints()
    return points


def _lines_payable(benefit, basket, offer):
    """(line, amount, quantity) for the lines points may pay for, after discounts.

    Lines Oscar will not discount (``is_discountable``, no stock record) are left
    out, and so are the items an exclusive offer has already taken.
    """
    incl_tax = settings.OSCAR_OFFERS_INCL_TAX
    payable = []
    for line in basket.all_lines():
        if not benefit.can_apply_benefit(line) or not line.quantity:
            continue
        quantity = line.quantity_without_offer_discount(offer)
        if quantity <= 0:
            continue
        price = (
            line.line_price_incl_tax_incl_discounts
            if incl_tax
            else line.line_price_excl_tax_incl_discounts
        )
        if price is None:
            continue
        amount = (price * quantity / line.quantity).quantize(CENT, rounding=ROUND_DOWN)
        if amount > 0:
            payable.append((line, amount, quantity))
    return payable


def basket_hold_points(basket):
    """The points the basket's owner applied to it (0 for guests and new baskets).

    Cached on the basket object: the offer's condition, its benefit and the pages
    all ask within one request, for one query; none at all when
    :class:`~oscar_loyalty.middleware.LoyaltyMiddleware` knows from the session
    that the shopper applied no points to this basket.
    """
    cached = getattr(basket, "_loyalty_hold_points", None)
    if cached is not None:
        return cached
    points = 0
    if basket.id and basket.owner_id and may_hold_points(basket):
        found = (
            Hold.objects.filter(
                basket_id=basket.id,
                status=Hold.Status.ACTIVE,
                member__user_id=basket.owner_id,
            )
            .values_list("pk", "points", "expires_at")
            .first()
        )
        if found is None:
            points = _apply_again(basket)
        else:
            hold_id, points, expires_at = found
            _keep_alive(hold_id, expires_at)
    basket._loyalty_hold_points = points
    return points


def _apply_again(basket):
    """The shopper's session says points are applied, but the hold timed out.

    The shopper came back to the checkout: hold the same points again if they are
    still spendable, so the price they see is the price they saw; otherwise drop
    the session's note and price the basket without points. Returns the points.
    """
    from .services.holds import hold_points

    session = session_for(basket)
    last = None
    if session is not None:
        last = (
            Hold.objects.filter(
                basket_id=basket.id,
                member__user_id=basket.owner_id,
                status=Hold.Status.RELEASED,
            )
            .select_related("member")
            .order_by("-closed_at", "-id")
            .first()
        )
    # Only a hold its timeout released (closed at or after its expiry); one the
    # shopper gave up (points removed, basket emptied) stays given up.
    if last is not None and last.closed_at and last.closed_at >= last.expires_at:
        try:
            return hold_points(
                member=last.member, basket_id=basket.id, points=last.points
            ).points
        except LoyaltyError:
            pass  # spent meanwhile: price the basket without points
        except DatabaseError:
            # Pricing a page must not fail on this: log, and price without points.
            logger.exception("Could not hold points again for basket %s", basket.id)
    forget_points(session)
    return 0


def _keep_alive(hold_id, expires_at):
    """Push a hold's timeout back while its shopper is still at the checkout.

    The timeout frees points a shopper walked away from; a shopper still moving
    through the checkout keeps them. At most one UPDATE per half timeout, guarded
    by the status, so a hold released meanwhile stays released.
    """
    timeout = timedelta(minutes=loyalty_settings.HOLD_TIMEOUT_MINUTES)
    now = timezone.now()
    if expires_at - now < timeout / 2:
        Hold.objects.filter(pk=hold_id, status=Hold.Status.ACTIVE).update(
            expires_at=now + timeout
        )


def payable_amount(benefit, basket, offer):
    """What points may pay for in this basket now, before the share limit."""
    return sum((amount for _, amount, _ in _lines_payable(benefit, basket, offer)), 0)


def apply_points_discount(benefit, basket, offer):
    """The benefit's ``apply``: the applied points, within the limits, as money off.

    Records on the basket how many points the discount stands for
    (``_loyalty_points_used``) and the most this basket could take
    (``_loyalty_points_cap``), for the pages and for the capture.
    """
    basket._loyalty_points_used = 0
    points = basket_hold_points(basket)
    if points <= 0:
        return ZERO_DISCOUNT
    policy = Policy.current()
    payable = _lines_payable(benefit, basket, offer)
    total = sum((amount for _, amount, _ in payable), Decimal("0"))
    basket._loyalty_points_cap = policy.usable(MAX_POINTS, total)
    used = policy.usable(points, total)
    if used <= 0:
        return ZERO_DISCOUNT
    discount = policy.value_of(used)
    if discount <= 0:
        return ZERO_DISCOUNT
    for line, share, quantity in _spread(discount, payable, total):
        line.discount(
            share, quantity, incl_tax=settings.OSCAR_OFFERS_INCL_TAX, offer=offer
        )
    basket._loyalty_points_used = used
    return BasketDiscount(discount)


def _spread(discount, payable, total):
    """Share ``discount`` over the lines by value, in cents, never above a line."""
    shares = []
    given = Decimal("0")
    for line, amount, quantity in payable:
        share = min(
            (discount * amount / total).quantize(CENT, rounding=ROUND_DOWN), amount
        )
        shares.append([line, share, quantity, amount])
        given += share
    left = discount - given
    for item in shares:  # the rounding remainder, where there is room
        if left <= 0:
            break
        extra = min(left, item[3] - item[1])
        item[1] += extra
        left -= extra
    return [(line, share, quantity) for line, share, quantity, _ in shares if share]


def capture_for_order(basket, order, application):
    """The benefit's ``apply_deferred``: debit the points the order's discount used.

    Runs inside ``OrderCreator.place_order``'s transaction. A refusal (the hold was
    released and the points were spent meanwhile) raises Oscar's
    ``UnableToPlaceOrder``, which rolls the order back and shows the shopper why.
    Returns the message Oscar stores on the order's discount.
    """
    from .services.holds import capture_basket

    points = getattr(basket, "_loyalty_points_used", 0)
    if not points:
        policy = Policy.current()
        points = policy.to_step(application["discount"] / policy.point_value)
    if points <= 0:
        return ""
    if not order.user_id or order.user_id != basket.owner_id:
        # Only the basket's owner can pay with the points held for it.
        raise UnableToPlaceOrder(
            str(_("Points can only pay for an order of the member who applied them."))
        )
    try:
        capture_basket(
            user_id=order.user_id,
            basket_id=basket.id,
            points=points,
            order_number=order.number,
        )
    except LoyaltyError as exc:
        raise UnableToPlaceOrder(str(exc)) from exc
    return str(_("%(points)s points redeemed") % {"points": points})


@transaction.atomic
def refit_basket_hold(basket_id):
    """After a basket changed: give back at once what its discount no longer uses.

    An emptied or closed basket releases its hold; a smaller one keeps only the
    points its discount can still use (worked out by the offer itself, with the
    owner's pricing strategy). A bigger basket keeps the hold as it is.
    """
    from .services.holds import hold_points, lock_basket, release_hold
    from .services.ledger import lock_member

    hold = Hold.objects.filter(basket_id=basket_id, status=Hold.Status.ACTIVE).first()
    if hold is None:
        return None
    # In hold_points' order (basket, then member): nothing can apply, capture or
    # release this basket's points until the decision below is written.
    lock_basket(basket_id)
    lock_member(hold.member_id)
    hold = (
        Hold.objects.filter(pk=hold.pk, status=Hold.Status.ACTIVE)
        .select_related("member__user")
        .first()
    )
    if hold is None:
        return None
    Basket = get_model("basket", "Basket")
    basket = Basket.objects.filter(pk=basket_id).first()
    if (
        basket is None
        or basket.status != Basket.OPEN
        or basket.owner_id != hold.member.user_id
        or basket.is_empty
    ):
        release_hold(hold=hold)
        if basket is not None:
            forget_points(session_for(basket))  # not to be applied again later
        return 0
    basket.strategy = Selector().strategy(user=hold.member.user)
    basket._loyalty_hold_points = hold.points
    Applicator().apply(basket, hold.member.user)
    used = getattr(basket, "_loyalty_points_used", 0)
    if used <= 0:
        release_hold(hold=hold)
        forget_points(session_for(basket))
    elif used < hold.points:
        hold_points(member=hold.member, basket_id=basket_id, points=used)
    return used


#: The programme's offer, made by migration 0003 (whose class paths are public API).
OFFER_SLUG = "loyalty-points-redemption"
#: After every other offer, so the limits see the basket they discount.
POINTS_OFFER_PRIORITY = -1000


def points_offer():
    """The programme's SITE offer, or None if an owner deleted it."""
    ConditionalOffer = get_model("offer", "ConditionalOffer")
    return (
        ConditionalOffer.objects.filter(slug=OFFER_SLUG)
        .select_related("condition", "benefit")
        .first()
    )


def ensure_points_offer():
    """Make the programme's offer again if it is missing (as migration 0003 does).

    For shops whose owner deleted it, and for test databases emptied by a flush.
    Returns the offer.
    """
    from .models import PointsRedemptionBenefit, PointsRedemptionCondition

    offer = points_offer()
    if offer is not None:
        return offer
    ConditionalOffer = get_model("offer", "ConditionalOffer")
    condition_path = f"{__package__}.models.PointsRedemptionCondition"
    benefit_path = f"{__package__}.models.PointsRedemptionBenefit"
    condition = PointsRedemptionCondition.objects.filter(
        proxy_class=condition_path
    ).first() or PointsRedemptionCondition.objects.create(proxy_class=condition_path)
    benefit = PointsRedemptionBenefit.objects.filter(
        proxy_class=benefit_path
    ).first() or PointsRedemptionBenefit.objects.create(proxy_class=benefit_path)
    name = "Points"
    if ConditionalOffer.objects.filter(name=name).exists():
        name = "Points (loyalty programme)"
    return ConditionalOffer.objects.create(
        name=name,
        slug=OFFER_SLUG,
        description=(
            "Members pay for part of their order with their points: apply them in "
            "the basket or at checkout."
        ),
        offer_type=ConditionalOffer.SITE,
        status=ConditionalOffer.OPEN,
        exclusive=False,
        priority=POINTS_OFFER_PRIORITY,
        max_basket_applications=1,
        condition=condition,
        benefit=benefit,
    )
