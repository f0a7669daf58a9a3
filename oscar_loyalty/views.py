"""The shopper's views: points at checkout and the Loyalty tab of the account.

Applying and removing points are POST-only (CSRF-protected) and work on
``request.basket``, the signed-in shopper's own basket: no basket id is ever taken
from the form. Every limit is checked here from the basket and the balance,
whatever the form says. Every view is for the signed-in shopper's own account.
"""

import math
import re
from datetime import timedelta

from django.contrib import messages
from django.db import transaction
from django.db.models import Sum
from django.db.models.functions import Coalesce
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views import View
from django.views.generic import ListView
from oscar.core.loading import get_class
from oscar.templatetags.currency_filters import currency

from .conf import loyalty_settings
from .exceptions import InsufficientPoints, LoyaltyError
from .middleware import forget_points, remember_points
from .models import TIER_COLOUR_PATTERN, Hold, Lot, Member, Posting, TierChange
from .redemption import (
    BasketTooSmall,
    BelowMinimumBalance,
    EmptyBasket,
    NotAStep,
    PointsSwitchedOff,
    Policy,
    parse_points,
)
from .services import tiers as tier_service
from .services.holds import hold_points, release_basket_hold
from .services.members import get_or_create_member

Applicator = get_class("offer.applicator", "Applicator")


class BasketPointsMixin:
    """Redirect back where the shopper came from (basket or checkout), safely."""

    http_method_names = ["post"]

    def get_success_url(self):
        target = self.request.POST.get("next", "")
        if url_has_allowed_host_and_scheme(
            target,
            allowed_hosts={self.request.get_host()},
            require_https=self.request.is_secure(),
        ):
            return target
        return reverse("basket:summary")

    def done(self):
        return HttpResponseRedirect(self.get_success_url())


class ApplyPointsView(BasketPointsMixin, View):
    """Apply points to the basket: a number of points, or ``all`` the basket takes.

    The points are held at once (no other basket or tab can spend them), cut to
    what the basket can take under the owner's limits; applying again replaces the
    previous amount, so a replayed POST changes nothing.
    """

    def post(self, request, *args, **kwargs):
        basket = request.basket
        try:
            applied = self.apply(request, basket)
        except LoyaltyError as exc:
            messages.error(request, str(exc))
            return self.done()
        if applied["cut"]:
            messages.info(
                request,
                _(
                    "This basket takes at most %(points)s points, so %(points)s "
                    "were applied."
                )
                % {"points": applied["points"]},
            )
        messages.success(
            request,
            _("%(points)s points applied: %(amount)s off your order.")
            % {
                "points": applied["points"],
                "amount": currency(applied["amount"], basket.currency),
            },
        )
        return self.done()

    def apply(self, request, basket):
        if not basket.id or basket.is_empty:
            raise EmptyBasket()
        policy = Policy.current()
        member = get_or_create_member(request.user)
        spendable = member.spendable + self.held_by(basket, member)
        if spendable < policy.minimum_balance or spendable < policy.step:
            raise BelowMinimumBalance(
                minimum=max(policy.minimum_balance, policy.step), spendable=spendable
            )
        if request.POST.get("points", "").strip().lower() == "all":
            wanted = policy.to_step(spendable)
        else:
            wanted = parse_points(request.POST.get("points"))
            if wanted % policy.step:
                raise NotAStep(step=policy.step)
            if wanted > spendable:
                raise InsufficientPoints(spendable=spendable, requested=wanted)
        used = self.usable_points(request, basket, wanted)
        if used <= 0:
            raise BasketTooSmall(share=int(policy.max_share * 100), step=policy.step)
        with transaction.atomic():
            # Checked again under the member's lock: refused if the points were
            # spent in another tab meanwhile.
            hold_points(member=member, basket_id=basket.id, points=used)
        remember_points(request, basket.id)
        return {
            "points": used,
            "amount": policy.value_of(used),
            "cut": used < wanted,
        }

    @staticmethod
    def held_by(basket, member):
        """Points this basket already holds (they count as spendable here)."""
        return (
            Hold.objects.filter(
                basket_id=basket.id, member=member, status=Hold.Status.ACTIVE
            )
            .values_list("points", flat=True)
            .first()
        ) or 0

    @staticmethod
    def usable_points(request, basket, wanted):
        """What the basket's discount would use of ``wanted`` points, by the offer.

        The basket's offers are applied again with ``wanted`` in place of the
        stored hold, so the cut is the offer's own: one rule, not two.
        """
        basket.reset_offer_applications()
        basket._loyalty_hold_points = wanted
        if hasattr(basket, "_loyalty_points_used"):
            del basket._loyalty_points_used
        Applicator().apply(basket, request.user, request)
        if not hasattr(basket, "_loyalty_points_used"):
            # The benefit never ran: the owner suspended or deleted the offer.
            raise PointsSwitchedOff()
        return basket._loyalty_points_used


class RemovePointsView(BasketPointsMixin, View):
    """Take the points off the basket: the hold goes back to the member at once."""

    def post(self, request, *args, **kwargs):
        basket = request.basket
        hold = None
        if basket.id:
            hold = Hold.objects.filter(
                basket_id=basket.id,
                member__user=request.user,
                status=Hold.Status.ACTIVE,
            ).first()
        forget_points(request)
        if hold is not None and release_basket_hold(basket_id=basket.id):
            messages.success(
                request,
                _("%(points)s points are back in your balance.")
                % {"points": hold.points},
            )
        else:
            messages.info(request, _("No points were applied to this basket."))
        return self.done()


class AccountView(ListView):
    """The Loyalty tab of the shopper's account: balances, expiry, history.

    Only ever the signed-in shopper's own member account (created on first visit
    for customers from before the programme).
    """

    template_name = "oscar_loyalty/account.html"
    context_object_name = "postings"
    paginate_by = 20
    #: How far ahead "expiring soon" looks.
    EXPIRING_DAYS = 90

    def get_queryset(self):
        self.member = get_or_create_member(self.request.user)
        return (
            Posting.objects.filter(member=self.member)
            .annotate(
                available_points=Coalesce(Sum("entries__available_change"), 0),
                pending_points=Coalesce(Sum("entries__pending_change"), 0),
            )
            .order_by("-created_at", "-id")
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        member = self.member
        now = timezone.now()
        expiring = (
            Lot.objects.filter(
                member=member,
                status=Lot.Status.ACTIVE,
                remaining__gt=0,
                expires_at__lte=now + timedelta(days=self.EXPIRING_DAYS),
            )
            .values("expires_at")
            .annotate(points=Sum("remaining"))
            .order_by("expires_at")[:10]
        )
        context.update(
            member=member,
            page_title=_("Loyalty points"),
            active_tab="loyalty",
            programme_name=loyalty_settings.PROGRAMME_NAME,
            expiring=list(expiring),
            expiring_days=self.EXPIRING_DAYS,
            point_value=Policy.current().value_of(member.spendable),
            tier_panel=self.tier_panel(member, now),
        )
        return context

    #: The member's tier changes shown on the tab (newest first).
    TIER_HISTORY = 10
    #: A colour the badge may be painted in (as the model validates it; rows
    #: written around the model's validation fall back to the default).
    HEX_COLOUR = re.compile(TIER_COLOUR_PATTERN)
    DEFAULT_COLOUR = "#6c757d"

    def tier_panel(self, member, now):
        """The member's tier, what the next one takes and their tier history.

        None when the shop has no tiers (then neither a current nor a next tier).
        A constant number of queries: those of ``progress`` and one for the history.
        """
        progress = tier_service.progress(member, now=now)
        tier, next_tier = progress.tier, progress.next_tier
        if tier is None and next_tier is None:
            return None
        needed = progress.needed
        if progress.basis != "spend":  # points and orders are whole numbers
            needed = math.ceil(needed)
        bar = None
        if next_tier is not None:
            low = tier.threshold if tier is not None else 0
            high = next_tier.threshold
            value = min(max(progress.value, low), high)
            percent = 100 if high <= low else int((value - low) * 100 / (high - low))
            bar = {"min": low, "max": high, "now": value, "percent": percent}
        protected_until = member.tier_protected_until
        if protected_until is not None and protected_until <= now:
            protected_until = None
        colour = tier.colour if tier is not None else ""
        if not self.HEX_COLOUR.match(colour or ""):
            colour = self.DEFAULT_COLOUR
        history = (
            TierChange.objects.filter(member=member)
            .select_related("from_tier", "to_tier")
            .order_by("-created_at", "-id")[: self.TIER_HISTORY]
        )
        return {
            "progress": progress,
            "tier": tier,
            "next_tier": next_tier,
            "needed": needed,
            "calendar_year": progress.window_end is not None,
            "window_months": loyalty_settings.TIER_WINDOW_MONTHS,
            "bar": bar,
            "since": member.tier_since if tier is not None else None,
            "protected_until": protected_until if tier is not None else None,
            "grace_until": member.tier_grace_until if tier is not None else None,
            "colour": colour,
            "text_colour": self.readable_on(colour),
            "history": list(history),
        }

    @staticmethod
    def readable_on(colour):
        """Black or white, whichever contrasts more with ``colour`` (WCAG)."""
        digits = colour.lstrip("#")

        def linear(channel):
            channel /= 255
            if channel <= 0.03928:
                return channel / 12.92
            return ((channel + 0.055) / 1.055) ** 2.4

        red, green, blue = (linear(int(digits[i : i + 2], 16)) for i in (0, 2, 4))
        luminance = 0.2126 * red + 0.7152 * green + 0.0722 * blue
        on_black = (luminance + 0.05) / 0.05
        on_white = 1.05 / (luminance + 0.05)
        return "#000000" if on_black >= on_white else "#ffffff"


class ReminderConsentView(View):
    """Turn expiry reminder e-mails on or off (POST, own account only)."""

    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        member = get_or_create_member(request.user)
        wanted = request.POST.get("expiry_reminders") == "on"
        Member.objects.filter(pk=member.pk).update(expiry_reminders=wanted)
        if wanted:
            messages.success(
                request, _("We will e-mail you before any of your points expire.")
            )
        else:
            messages.success(request, _("You will get no expiry reminders."))
        return HttpResponseRedirect(reverse("loyalty:account"))
