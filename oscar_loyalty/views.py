"""The shopper's views: points at checkout and the Loyalty tab of the account.

Applying and removing points are POST-only (CSRF-protected) and work on
``request.basket``, the signed-in shopper's own basket: no basket id is ever taken
from the form. Every limit is checked here from the basket and the balance,
whatever the form says. Every view is for the signed-in shopper's own account.
"""

import logging
from datetime import date, timedelta

from django import forms
from django.contrib import messages
from django.db import IntegrityError, transaction
from django.db.models import Count, Prefetch, Q, Sum
from django.db.models.functions import Coalesce
from django.http import HttpResponseRedirect
from django.urls import reverse
from django.utils import timezone
from django.utils.dates import MONTHS
from django.utils.formats import date_format
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views import View
from django.views.generic import ListView, TemplateView
from oscar.core.loading import get_class, get_model
from oscar.templatetags.currency_filters import currency

from . import consent, summaries
from .conf import loyalty_settings
from .exceptions import (
    InsufficientPoints,
    LoyaltyError,
    RewardUnavailable,
)
from .middleware import forget_points, remember_points
from .models import (
    ActionAward,
    ActionRule,
    CouponDesign,
    Hold,
    Lot,
    Member,
    MemberCoupon,
    Posting,
    Referral,
    Reward,
)
from .redeeming import new_token, redeem_posted
from .redemption import (
    BasketTooSmall,
    BelowMinimumBalance,
    EmptyBasket,
    NotAStep,
    PointsSwitchedOff,
    Policy,
    parse_points,
)
from .services import actions, referrals
from .services.coupons import next_birthday
from .services.holds import hold_points, release_basket_hold
from .services.members import (
    get_or_create_member,
    normalise_phone,
    remember_language,
)
from .summaries import own_member, reward_offers

logger = logging.getLogger(__name__)

Applicator = get_class("offer.applicator", "Applicator")
VoucherApplication = get_model("voucher", "VoucherApplication")

#: A leap year: the year a birthday is checked and shown in (29 February exists).
LEAP_YEAR = 2000


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
    EXPIRING_DAYS = summaries.EXPIRING_DAYS

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
            coupons_to_use=MemberCoupon.objects.usable(now)
            .filter(member=member)
            .count(),
            birthday=self.birthday_panel(member, now),
            consents=self.consent_panel(member),
            **self.action_panels(member, now),
        )
        return context

    def consent_panel(self, member):
        """Each purpose with the member's answer and its last change, and the
        newest changes (two queries)."""
        return {
            "purposes": consent.answers(member),
            "history": consent.history(member, limit=10),
        }

    def action_panels(self, member, now):
        """The daily check-in (only while check-ins earn points) and the
        member's invitation link, code and referrals: four queries."""
        rules = {
            rule.action: rule
            for rule in ActionRule.objects.filter(
                is_active=True,
                action__in=[ActionRule.Action.CHECKIN, ActionRule.Action.REFERRER],
            )
        }
        checkin = None
        rule = rules.get(ActionRule.Action.CHECKIN)
        if rule is not None:
            key = actions.checkin_key(member.pk, now)
            checkin = {
                "points": rule.points,
                "done": ActionAward.objects.filter(key=key).exists(),
            }
        made = member.referrals_made.aggregate(
            made=Count("pk"),
            rewarded=Count("pk", filter=Q(status=Referral.Status.REWARDED)),
        )
        referrer_rule = rules.get(ActionRule.Action.REFERRER)
        return {
            "checkin": checkin,
            "referral": {
                # Drawn (and saved) the first time the member sees it.
                "code": referrals.referral_code(member),
                "link": referrals.referral_link(self.request, member),
                "points": referrer_rule.points if referrer_rule else None,
                "made": made["made"],
                "rewarded": made["rewarded"],
            },
        }

    @staticmethod
    def birthday_panel(member, now):
        """The member's birthday, when their next birthday coupon comes (only while
        the shop has an active birthday design) and the choices of the form."""
        birthday = next_coupon = None
        if member.birth_month and member.birth_day:
            birthday = date(LEAP_YEAR, member.birth_month, member.birth_day)
            designs = CouponDesign.objects.filter(
                purpose=CouponDesign.Purpose.BIRTHDAY, is_active=True
            )
            if designs.exists():
                # Coupons are issued BIRTHDAY_DAYS_AHEAD days before the birthday.
                ahead = timedelta(days=loyalty_settings.BIRTHDAY_DAYS_AHEAD)
                today = timezone.localdate(now)
                next_coupon = next_birthday(member, today + ahead) - ahead
        return {
            "date": birthday,
            "next_coupon": next_coupon,
            "months": list(MONTHS.items()),
            "days": range(1, 32),
        }

    @staticmethod
    def tier_panel(member, now):
        return summaries.tier_panel(member, now)


class ConsentView(View):
    """Give or withdraw consent per purpose (POST, own account only).

    Every purpose is on the form, so an unticked box withdraws consent; each real
    change is recorded with the time and "Account page" as its source.
    """

    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        member = get_or_create_member(request.user)
        answers = {
            purpose: request.POST.get(purpose) == "on" for purpose in consent.Purpose
        }
        changes = consent.record(
            member, answers, source=consent.Source.ACCOUNT, actor=request.user
        )
        remember_language(member, request)
        if changes:
            messages.success(request, _("Your choices are saved."))
        else:
            messages.info(request, _("Nothing changed: your choices were already so."))
        return HttpResponseRedirect(reverse("loyalty:account") + "#loyalty-consent")


class ReminderConsentView(View):
    """Turn expiry reminder e-mails on or off (POST, own account only)."""

    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        member = get_or_create_member(request.user)
        wanted = request.POST.get("expiry_reminders") == "on"
        consent.record(
            member,
            {consent.Purpose.REMINDERS: wanted},
            source=consent.Source.ACCOUNT,
            actor=request.user,
        )
        remember_language(member, request)
        if wanted:
            messages.success(
                request, _("We will e-mail you before any of your points expire.")
            )
        else:
            messages.success(request, _("You will get no expiry reminders."))
        return HttpResponseRedirect(reverse("loyalty:account"))


class BirthdayForm(forms.Form):
    """A birthday as a month and a day, which must exist (29 February does)."""

    month = forms.IntegerField(
        min_value=1,
        max_value=12,
        error_messages={
            "required": gettext_lazy("Choose the month of your birthday."),
            "invalid": gettext_lazy("Choose a month from the list."),
            "min_value": gettext_lazy("Choose a month from the list."),
            "max_value": gettext_lazy("Choose a month from the list."),
        },
    )
    day = forms.IntegerField(
        min_value=1,
        max_value=31,
        error_messages={
            "required": gettext_lazy("Choose the day of your birthday."),
            "invalid": gettext_lazy("Choose a day from the list."),
            "min_value": gettext_lazy("Choose a day from the list."),
            "max_value": gettext_lazy("Choose a day from the list."),
        },
    )

    def clean(self):
        cleaned = super().clean()
        month, day = cleaned.get("month"), cleaned.get("day")
        if month and day:
            try:
                date(LEAP_YEAR, month, day)
            except ValueError:
                raise forms.ValidationError(
                    _("%(month)s has no day %(day)s.")
                    % {"month": MONTHS[month], "day": day}
                ) from None
        return cleaned


class PhoneView(View):
    """Set or clear the phone text messages go to (POST, own account only).

    Written with its country code as ``+`` and digits; a number another member
    has, or one without a country code, is refused and nothing is saved.
    """

    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        member = get_or_create_member(request.user)
        raw = (request.POST.get("phone") or "").strip()
        done = HttpResponseRedirect(reverse("loyalty:account") + "#loyalty-consent")
        if not raw or "clear" in request.POST:
            Member.objects.filter(pk=member.pk).update(phone="")
            messages.success(request, _("Your phone number has been removed."))
            return done
        try:
            phone = normalise_phone(raw)
        except ValueError:
            messages.error(
                request,
                _(
                    "Write the phone number with its country code, "
                    "e.g. +86 138 0013 8000."
                ),
            )
            return done
        try:
            with transaction.atomic():
                Member.objects.filter(pk=member.pk).update(phone=phone)
        except IntegrityError:
            messages.error(request, _("Another member has this phone number."))
            return done
        messages.success(request, _("Your phone number is saved: %s.") % phone)
        return done


class BirthdayView(View):
    """Set or clear the member's birthday (POST, own account only).

    Only ``birth_month`` and ``birth_day`` are written, both or neither; bad input
    saves nothing and says why.
    """

    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        member = get_or_create_member(request.user)
        members = Member.objects.filter(pk=member.pk)
        if "clear" in request.POST:
            members.update(birth_month=None, birth_day=None)
            messages.success(request, _("Your birthday has been removed."))
            return self.done()
        form = BirthdayForm(request.POST)
        if not form.is_valid():
            for errors in form.errors.values():
                for error in errors:
                    messages.error(request, error)
            return self.done()
        month, day = form.cleaned_data["month"], form.cleaned_data["day"]
        members.update(birth_month=month, birth_day=day)
        self.reward_profile(request, member, month, day)
        messages.success(
            request,
            _("Your birthday is saved: %(date)s.")
            % {"date": date_format(date(LEAP_YEAR, month, day), "MONTH_DAY_FORMAT")},
        )
        return self.done()

    @staticmethod
    def reward_profile(request, member, month, day):
        """A birthday may complete the profile (an action reward, once ever)."""
        from .services import actions

        member.birth_month, member.birth_day = month, day
        member.user = request.user
        try:
            with transaction.atomic():
                actions.reward_profile_completion(member)
        except Exception:
            logger.exception("Could not reward the profile of member %s", member.pk)

    @staticmethod
    def done():
        return HttpResponseRedirect(reverse("loyalty:account") + "#loyalty-birthday")


class CouponsView(TemplateView):
    """The shopper's coupons: usable, used (on which orders) and expired.

    Only the signed-in shopper's own coupons; a shopper without a member account
    has none (no account is made here). A constant number of queries, however
    many coupons: one per group and one for the orders of the used ones.
    """

    template_name = "oscar_loyalty/coupons.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        now = timezone.now()
        mine = MemberCoupon.objects.filter(member__user=self.request.user)
        related = ("voucher", "design", "design__tier", "design__product")
        applications = Prefetch(
            "voucher__applications",
            queryset=VoucherApplication.objects.filter(order__user=self.request.user)
            .select_related("order")
            .order_by("date_created", "pk"),
            to_attr="loyalty_applications",
        )
        context.update(
            page_title=_("My coupons"),
            active_tab="coupons",
            usable=list(
                mine.usable(now)
                .select_related(*related)
                .order_by("voucher__end_datetime", "pk")
            ),
            used=list(
                mine.used().select_related(*related).prefetch_related(applications)
            ),
            expired=list(
                mine.expired(now)
                .select_related(*related)
                .order_by("-voucher__end_datetime", "-pk")
            ),
        )
        return context


class CheckInView(View):
    """Today's check-in (POST, own account only): the points of the check-in
    rule, once a day in the shop's time zone; the service says why not."""

    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        member = get_or_create_member(request.user)
        try:
            award = actions.check_in(member)
        except LoyaltyError as exc:
            messages.info(request, str(exc))
        else:
            if award is None:
                messages.info(
                    request, _("Thanks for checking in. No points for it just now.")
                )
            else:
                messages.success(
                    request,
                    _("Checked in: %(points)s points added.")
                    % {"points": award.points},
                )
        return HttpResponseRedirect(reverse("loyalty:account") + "#loyalty-checkin")


# The rewards catalogue ------------------------------------------------------------


class RewardsView(TemplateView):
    """The rewards catalogue: what the member's points buy, and what they can
    redeem now. Reads only (a shopper without a member account sees the
    catalogue with no points); a fixed number of queries."""

    template_name = "oscar_loyalty/rewards.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        member = own_member(self.request.user)
        context.update(
            page_title=_("Rewards"),
            active_tab="rewards",
            member=member,
            offers=reward_offers(member, timezone.now()),
        )
        return context


class RewardRedeemView(TemplateView):
    """Confirm and redeem one reward.

    GET shows what the member spends and keeps, with a fresh token; it changes
    nothing. POST (CSRF-protected) redeems through the service, for the
    signed-in member only; every refusal says why and writes nothing, and a
    reward that does not exist or is not available is a message, not an error.
    """

    template_name = "oscar_loyalty/reward_confirm.html"
    http_method_names = ["get", "post"]

    def unavailable(self):
        messages.error(self.request, str(RewardUnavailable()))
        return HttpResponseRedirect(reverse("loyalty:rewards"))

    def get(self, request, *args, **kwargs):
        member = own_member(request.user)
        offers = reward_offers(
            member,
            timezone.now(),
            Reward.objects.filter(
                pk=self.kwargs["pk"], is_active=True, design__is_active=True
            ),
        )
        if not offers:
            return self.unavailable()
        offer = offers[0]
        return self.render_to_response(
            self.get_context_data(
                page_title=_("Redeem a reward"),
                active_tab="rewards",
                member=member,
                offer=offer,
                left=member.spendable - offer.reward.points_price,
                token=new_token(),
            )
        )

    def post(self, request, *args, **kwargs):
        if redeem_posted(request, self.kwargs["pk"]):
            return HttpResponseRedirect(reverse("loyalty:coupons"))
        return HttpResponseRedirect(reverse("loyalty:rewards"))
