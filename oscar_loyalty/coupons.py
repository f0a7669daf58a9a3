"""Member coupons at the basket: their Oscar offers, who may use them, and the gate
in front of Oscar's voucher form.

Each :class:`~oscar_loyalty.models.CouponDesign` has one Oscar *voucher* offer
(:func:`sync_design_offer`, run when the design is saved) whose condition is a
:class:`~oscar_loyalty.models.MemberCouponCondition`: only the coupon's own member
satisfies it. Issuing coupons is :mod:`oscar_loyalty.services.coupons`.

Oscar's voucher form answers an unknown code, an expired voucher and one that is
not for this shopper with different messages, which would tell a guesser that a
code exists. :func:`voucher_entry_gate` (run by ``LoyaltyMiddleware`` before
Oscar's view) answers another member's coupon exactly as an unknown code and
throttles codes that are unknown to the shopper, per user and per address, with
counters updated atomically in the database.
"""

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib import messages
from django.db import connections, router, transaction
from django.utils import timezone, translation
from django.utils.html import escape
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from oscar.core.loading import get_model
from oscar.core.utils import redirect_to_referrer

from . import rules_lookup
from .conf import loyalty_settings

ConditionalOffer = get_model("offer", "ConditionalOffer")
Benefit = get_model("offer", "Benefit")
Range = get_model("offer", "Range")
Voucher = get_model("voucher", "Voucher")

#: Coupon offers apply after tier and ordinary offers of higher priority.
COUPON_OFFER_PRIORITY = 50
CONDITION_PATH = f"{__package__}.models.MemberCouponCondition"


# The design's Oscar offer ------------------------------------------------------


def _product_range(design):
    """The design's own range holding just its product (created on first use)."""
    product_range = design.product_range
    if product_range is None:
        product_range = Range.objects.create(
            name=f"Member coupon #{design.pk}", is_public=False
        )
        type(design).objects.filter(pk=design.pk).update(product_range=product_range)
        design.product_range = product_range
    wanted = [design.product_id] if design.product_id else []
    if sorted(product_range.included_products.values_list("pk", flat=True)) != wanted:
        product_range.included_products.set(wanted)
    return product_range


def _benefit_for(design):
    from .models import CouponDesign
    from .tier_offers import _all_products_range

    if design.benefit_type == CouponDesign.BenefitType.SHIPPING:
        return Benefit.SHIPPING_PERCENTAGE, Decimal(100), None
    if design.benefit_type == CouponDesign.BenefitType.PRODUCT:
        return Benefit.PERCENTAGE, Decimal(100), _product_range(design)
    if design.benefit_type == CouponDesign.BenefitType.FIXED:
        return Benefit.FIXED, design.value, _all_products_range()
    return Benefit.PERCENTAGE, design.value, _all_products_range()


def _max_items(design):
    from .models import CouponDesign

    return 1 if design.benefit_type == CouponDesign.BenefitType.PRODUCT else None


def offer_name(design):
    """The offer's name in the shop's language (Oscar stores it and shows it in
    baskets, orders and its offer list); unique among offers."""
    with translation.override(settings.LANGUAGE_CODE):
        name = _("Member coupon: %(name)s") % {"name": design.name}
    taken = ConditionalOffer.objects.filter(name=name)
    if design.offer_id:
        taken = taken.exclude(pk=design.offer_id)
    return f"{name} (#{design.pk})" if taken.exists() else name


@transaction.atomic
def sync_design_offer(design):
    """Create or update the design's voucher offer (its benefit and minimum spend).

    Coupons already issued follow the change: they are vouchers of this offer.
    """
    from .models import MemberCouponCondition
    from .tier_offers import _all_products_range

    benefit_type, value, benefit_range = _benefit_for(design)
    name = offer_name(design)
    description = escape(design.name)
    if design.offer_id is None:
        condition = MemberCouponCondition.objects.create(
            proxy_class=CONDITION_PATH,
            range=_all_products_range(),
            value=design.minimum_spend,
        )
        benefit = Benefit.objects.create(
            type=benefit_type,
            value=value,
            range=benefit_range,
            max_affected_items=_max_items(design),
        )
        offer = ConditionalOffer.objects.create(
            name=name,
            description=description,
            offer_type=ConditionalOffer.VOUCHER,
            status=ConditionalOffer.OPEN,
            exclusive=False,
            # its benefit takes all it can at once: no second try
            max_basket_applications=1,
            priority=COUPON_OFFER_PRIORITY,
            condition=condition,
            benefit=benefit,
        )
        type(design).objects.filter(pk=design.pk).update(offer=offer)
        design.offer = offer
        return offer
    offer = design.offer
    condition = offer.condition
    if condition.value != design.minimum_spend:
        condition.value = design.minimum_spend
        condition.save(update_fields=["value"])
    benefit = offer.benefit
    wanted = (
        benefit_type,
        value,
        benefit_range.pk if benefit_range else None,
        _max_items(design),
    )
    if (
        benefit.type,
        benefit.value,
        benefit.range_id,
        benefit.max_affected_items,
    ) != wanted:
        benefit.type = benefit_type
        benefit.value = value
        benefit.range = benefit_range
        benefit.max_affected_items = _max_items(design)
        benefit.save(update_fields=["type", "value", "range", "max_affected_items"])
    if (offer.name, offer.description) != (name, description):
        offer.name = name
        offer.description = description
        offer.save(update_fields=["name", "description"])
    return offer


# At the basket -----------------------------------------------------------------


def _basket_coupons(basket, voucher_id):
    """{voucher id: (owner user id, tier rank needed)} of the basket's member
    coupons, read once per basket object (again only when a voucher is new)."""
    from .models import MemberCoupon

    cached = getattr(basket, "_loyalty_coupons", None)
    if cached is None or voucher_id not in cached:
        cached = {voucher_id: None}
        rows = MemberCoupon.objects.filter(
            voucher_id__in=basket.vouchers.values("pk")
        ).values_list("voucher_id", "member__user_id", "design__tier__rank")
        for voucher, user_id, rank in rows:
            cached[voucher] = (user_id, rank)
        basket._loyalty_coupons = cached
    return cached


def coupon_usable_in(voucher, basket):
    """Whether ``voucher`` is a member coupon of the basket's owner, who is in the
    coupon's tier or a higher one where the design names a tier."""
    if voucher is None or not basket.id or not getattr(basket, "owner_id", None):
        return False
    found = _basket_coupons(basket, voucher.pk).get(voucher.pk)
    if found is None:
        return False
    user_id, needed_rank = found
    if user_id != basket.owner_id:
        return False
    if needed_rank is None:
        return True
    rank = rules_lookup.basket_tier(basket)[0]
    return rank is not None and rank >= needed_rank


# Throttling --------------------------------------------------------------------


def _window_start(now, minutes):
    seconds = max(1, int(minutes * 60))
    epoch = int(now.timestamp())
    return datetime.fromtimestamp(epoch - epoch % seconds, tz=UTC)


def record_attempt(key, *, now=None):
    """Count one attempt for ``key`` in the current window; returns the new count.

    One ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` (PostgreSQL, SQLite ≥ 3.35):
    atomic, so concurrent requests never lose a count.
    """
    from .models import AttemptCounter

    now = now or timezone.now()
    window = _window_start(now, loyalty_settings.VOUCHER_ATTEMPT_WINDOW_MINUTES)
    alias = router.db_for_write(AttemptCounter)
    connection = connections[alias]
    quote = connection.ops.quote_name
    table = quote(AttemptCounter._meta.db_table)
    sql = (
        f"INSERT INTO {table} ({quote('key')}, {quote('window_start')}, "
        f"{quote('count')}) VALUES (%s, %s, 1) "
        f"ON CONFLICT ({quote('key')}, {quote('window_start')}) "
        f"DO UPDATE SET {quote('count')} = {table}.{quote('count')} + 1 "
        f"RETURNING {quote('count')}"
    )
    field = AttemptCounter._meta.get_field("window_start")
    with transaction.atomic(using=alias), connection.cursor() as cursor:
        cursor.execute(
            sql, [key, field.get_db_prep_value(window, connection=connection)]
        )
        return cursor.fetchone()[0]


def attempts(keys, *, now=None):
    """{key: attempts in the current window} for ``keys``."""
    from .models import AttemptCounter

    now = now or timezone.now()
    window = _window_start(now, loyalty_settings.VOUCHER_ATTEMPT_WINDOW_MINUTES)
    return dict(
        AttemptCounter.objects.filter(key__in=keys, window_start=window).values_list(
            "key", "count"
        )
    )


def purge_attempts(*, now=None):
    """Delete the counters of windows that have ended; returns how many."""
    from .models import AttemptCounter

    now = now or timezone.now()
    minutes = loyalty_settings.VOUCHER_ATTEMPT_WINDOW_MINUTES
    return AttemptCounter.objects.filter(
        window_start__lt=now - timedelta(minutes=minutes)
    ).delete()[0]


def client_address(request):
    """The client's address from ``OSCAR_LOYALTY_CLIENT_IP_HEADER``,
    ``REMOTE_ADDR`` by default. Of a list (``X-Forwarded-For``) the last entry:
    the one the shop's own proxy added, which the client cannot choose."""
    value = request.META.get(loyalty_settings.CLIENT_IP_HEADER) or request.META.get(
        "REMOTE_ADDR", ""
    )
    address = value.split(",")[-1].strip()[:100]
    return "".join(ch for ch in address if ch.isprintable()) or "unknown"


def throttle_keys(request):
    """{counter key: limit} for the request's user (signed in) and address."""
    address = client_address(request)
    keys = {f"voucher:ip:{address}": loyalty_settings.VOUCHER_ATTEMPTS_PER_IP}
    user = getattr(request, "user", None)
    if user is not None and user.is_authenticated:
        keys[f"voucher:user:{user.pk}"] = loyalty_settings.VOUCHER_ATTEMPTS_PER_USER
    return keys


# The gate in front of Oscar's voucher form ---------------------------------------


def unknown_code_message(code):
    """Oscar's own words for a code it cannot find (the same for a coupon of
    another member, so a guesser learns nothing)."""
    return _("No voucher found with code '%(code)s'") % {"code": code}


def voucher_entry_gate(request):
    """Run before Oscar's ``VoucherAddView``: a response to send instead of it,
    or None to let Oscar handle the code.

    A shop voucher and the shopper's own coupon go to Oscar untouched. A code
    unknown to the shopper (none, or another member's coupon) counts towards the
    throttle and gets Oscar's own answer for an unknown code, whichever it is.
    """
    code = request.POST.get("code", "").strip().upper()
    if not code or len(code) > 128 or "\x00" in code:
        return None  # Oscar's form says what is wrong with it
    found = (
        Voucher._default_manager.filter(code=code)
        .values_list("pk", "loyalty_coupon__member__user_id")
        .first()
    )
    user = getattr(request, "user", None)
    user_id = user.pk if user is not None and user.is_authenticated else None
    if found is not None and (found[1] is None or found[1] == user_id):
        return None  # a shop voucher, or the shopper's own coupon: Oscar decides
    keys = throttle_keys(request)
    counts = attempts(list(keys))
    if any(counts.get(key, 0) >= limit for key, limit in keys.items()):
        minutes = loyalty_settings.VOUCHER_ATTEMPT_WINDOW_MINUTES
        messages.error(
            request,
            ngettext(
                "Too many voucher codes were tried. Please try again in %(minutes)d "
                "minute.",
                "Too many voucher codes were tried. Please try again in %(minutes)d "
                "minutes.",
                minutes,
            )
            % {"minutes": minutes},
        )
        return redirect_to_referrer(request, "basket:summary")
    for key in keys:
        record_attempt(key)
    if found is None:
        return None  # Oscar answers as for any unknown code
    basket = getattr(request, "basket", None)
    if not getattr(basket, "id", None):
        # Oscar says nothing to a visitor whose basket is not saved yet.
        return redirect_to_referrer(request, "basket:summary")
    messages.error(request, unknown_code_message(code))
    return redirect_to_referrer(request, "basket:summary")
