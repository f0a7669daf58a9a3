"""Forms of the owner's loyalty screens.

They check what a person can get wrong (a fraction of a point, a missing reason, a
multiplier of zero) and say so on the form. The ledger services check again under
the member's row lock, since a balance can change between the form and the write.
"""

import re
import uuid
from datetime import date, datetime, time, timedelta
from decimal import Decimal

from django import forms
from django.conf import settings
from django.contrib.admin.models import ADDITION, CHANGE, DELETION
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from oscar.core.loading import get_class, get_model
from oscar.forms import widgets
from oscar.templatetags.currency_filters import currency

from .. import scoring
from ..conf import loyalty_settings
from ..consent import Purpose, consenting
from ..exceptions import CouponReasonRequired, TierReasonRequired
from ..models import (
    ACTIVITY_SEGMENTS,
    RFM_SEGMENTS,
    SEGMENT_CHOICES,
    VALUE_SEGMENTS,
    ActionRule,
    Campaign,
    CampaignStep,
    CouponDesign,
    EarnRule,
    Posting,
    Referral,
    Reward,
    Tier,
    WinBackRule,
)

Range = get_model("offer", "Range")
Product = get_model("catalogue", "Product")
ProductSelect = get_class("dashboard.catalogue.widgets", "ProductSelect")

#: The largest number of points one adjustment may add or take away. It only keeps
#: a slip of the keyboard from overflowing the ledger's integers.
MAX_ADJUSTMENT = 1_000_000_000


def phone_digits(word):
    """The digits of a search that looks like (part of) a phone number:
    "+86 138-0013" and "(138) 0013" find +8613800138000."""
    if not re.fullmatch(r"[+\d\s().-]+", word):
        return ""
    return re.sub(r"\D", "", word)


class MemberSearchForm(forms.Form):
    q = forms.CharField(
        label=_("Member number, e-mail, name or phone"),
        required=False,
        max_length=100,
    )

    tier = forms.ModelChoiceField(
        label=_("Tier"),
        queryset=Tier.objects.order_by("rank"),
        required=False,
        empty_label=_("Any tier"),
    )
    consent = forms.ChoiceField(
        label=_("Agreed to"),
        choices=[("", _("Anything or nothing"))] + list(Purpose.choices),
        required=False,
    )
    activity = forms.ChoiceField(
        label=_("Activity segment"),
        choices=[("", _("Any activity"))] + list(ACTIVITY_SEGMENTS),
        required=False,
    )
    value = forms.ChoiceField(
        label=_("Value segment"),
        choices=[("", _("Any value"))] + list(VALUE_SEGMENTS),
        required=False,
    )

    rfm = forms.ChoiceField(
        label=_("RFM segment"),
        choices=[("", _("Any RFM segment"))] + list(RFM_SEGMENTS),
        required=False,
    )
    churn_risk = forms.IntegerField(
        label=_("Churn risk at least"),
        min_value=0,
        max_value=100,
        required=False,
        help_text=_("0 to 100"),
    )
    as_of = forms.DateField(
        label=_("Segments as of"),
        required=False,
        widget=widgets.DatePickerInput(),
        help_text=_("The scoring run before the end of this day; empty: the newest."),
    )

    def filter(self, queryset):
        """``queryset`` narrowed to members matching every word of the query
        (and in the tier asked for).

        Each word may match the start of the member number or part of the customer's
        e-mail address, first or last name, so "mei lin" finds Mei Lin; a query of
        digits (spaces, "+", brackets and dashes allowed) finds part of a phone or
        member number.
        """
        if not self.is_valid():
            return queryset.none()
        if self.cleaned_data["tier"] is not None:
            queryset = queryset.filter(tier=self.cleaned_data["tier"])
        if self.cleaned_data["consent"]:
            queryset = consenting(self.cleaned_data["consent"], queryset)
        # Segments of the newest scoring run (members who agreed to profiling).
        wanted = {
            field: self.cleaned_data[name]
            for name, field in (
                ("activity", "activity_segment"),
                ("value", "value_segment"),
                ("rfm", "rfm_segment"),
            )
            if self.cleaned_data[name]
        }
        if self.cleaned_data["churn_risk"] is not None:
            wanted["churn_risk__gte"] = self.cleaned_data["churn_risk"]
        self.run = None
        if self.cleaned_data["as_of"]:
            self.run = scoring.run_as_of(
                start_of_day(self.cleaned_data["as_of"] + timedelta(days=1))
            )
            if self.run is None:
                return queryset.none()
        if wanted:
            queryset = scoring.in_segments(queryset, run=self.run, **wanted)
        query = self.cleaned_data["q"]
        digits = phone_digits(query)
        if len(digits) >= 4:
            # "+86 138 0013" is one phone number, not three words.
            return queryset.filter(
                Q(phone__contains=digits)
                | Q(number__contains=digits)
                | Q(user__email__icontains=query.strip())
            )
        for word in query.split():
            queryset = queryset.filter(
                Q(number__startswith=word.upper())
                | Q(user__email__icontains=word)
                | Q(user__first_name__icontains=word)
                | Q(user__last_name__icontains=word)
            )
        return queryset


class OnceForm(forms.Form):
    """A form whose hidden ``key`` is a new UUID each time it is shown: what it
    writes is keyed by it, so a double click or a replayed request writes once."""

    key = forms.UUIDField(
        widget=forms.HiddenInput,
        error_messages={
            "required": _("This form is out of date: reload the page and try again."),
            "invalid": _("This form is out of date: reload the page and try again."),
        },
    )

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("initial", {}).setdefault("key", uuid.uuid4())
        super().__init__(*args, **kwargs)


class AdjustmentForm(OnceForm):
    """Add (positive) or take away (negative) a member's points, with a reason.

    ``key`` is a new UUID each time the form is shown: the ledger writes one posting
    per key, so a double click or a replayed request changes the balance once.
    """

    points = forms.IntegerField(
        label=_("Points"),
        min_value=-MAX_ADJUSTMENT,
        max_value=MAX_ADJUSTMENT,
        help_text=_("A whole number: 50 adds 50 points, -50 takes 50 away."),
        error_messages={"invalid": _("Enter a whole number of points, such as 50.")},
    )
    reason = forms.CharField(
        label=_("Reason"),
        max_length=255,
        help_text=_(
            "Kept in the member's history with your name, e.g. "
            '"Goodwill for a late delivery".'
        ),
        error_messages={"required": _("Give a reason for this adjustment.")},
    )

    def clean_points(self):
        points = self.cleaned_data["points"]
        if points == 0:
            raise forms.ValidationError(
                _("Enter a number of points other than zero."), code="zero"
            )
        return points

    @property
    def posting_key(self):
        return f"adjust:{self.cleaned_data['key']}"


class MemberConsentForm(forms.Form):
    """What the member asked for (by phone, in the shop), purpose by purpose, and
    how they asked: staff record it, they do not decide it."""

    email = forms.BooleanField(label=Purpose.EMAIL.label, required=False)
    sms = forms.BooleanField(label=Purpose.SMS.label, required=False)
    profiling = forms.BooleanField(label=Purpose.PROFILING.label, required=False)
    reminders = forms.BooleanField(label=Purpose.REMINDERS.label, required=False)
    reason = forms.CharField(
        label=_("How the member asked"),
        max_length=200,
        help_text=_("e.g. phone call of 2 December, asked to stop e-mails"),
        error_messages={"required": _("Say how the member asked for this.")},
    )


class MemberNoteForm(OnceForm):
    """A note about a member for colleagues; ``key`` makes a double submission
    one note."""

    text = forms.CharField(
        label=_("Note"),
        max_length=2000,
        widget=forms.Textarea(attrs={"rows": 3}),
        error_messages={"required": _("Write the note first.")},
    )


class EarnRuleForm(forms.ModelForm):
    """An earn rule: which Oscar range earns how many times the normal points, when."""

    starts_at = forms.DateTimeField(
        label=_("Starts"),
        required=False,
        widget=widgets.DateTimePickerInput(),
        help_text=_("Leave empty to start at once."),
    )
    ends_at = forms.DateTimeField(
        label=_("Ends"),
        required=False,
        widget=widgets.DateTimePickerInput(),
        help_text=_("Leave empty to run until you deactivate the rule."),
    )

    class Meta:
        model = EarnRule
        fields = ["name", "range", "multiplier", "starts_at", "ends_at", "is_active"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["range"].queryset = Range.objects.order_by("name")

    def clean_multiplier(self):
        multiplier = self.cleaned_data["multiplier"]
        if multiplier is not None and multiplier <= 0:
            raise forms.ValidationError(
                _("The multiplier must be greater than zero."), code="not_positive"
            )
        return multiplier

    def clean(self):
        cleaned_data = super().clean()
        starts_at, ends_at = cleaned_data.get("starts_at"), cleaned_data.get("ends_at")
        if starts_at and ends_at and ends_at <= starts_at:
            # On the field, so the model's constraint isn't reported a second time.
            self.add_error("ends_at", _("The end must be after the start."))
        return cleaned_data


# Tiers -----------------------------------------------------------------------------

#: What a tier's threshold counts, by ``OSCAR_LOYALTY_TIER_BASIS``.
BASIS_LABELS = {
    "spend": _("Spend"),
    "points": _("Points earned"),
    "orders": _("Orders"),
}

MAX_TIER_MULTIPLIER = Decimal(10)


def threshold_label(basis):
    """The threshold's name with its unit, after the programme's basis."""
    if basis == "points":
        return _("Threshold (points)")
    if basis == "orders":
        return _("Threshold (orders)")
    return _("Threshold (spend in %(currency)s)") % {
        "currency": settings.OSCAR_DEFAULT_CURRENCY
    }


def format_threshold(value, basis):
    """A threshold as an owner reads it: money for spend, a whole number otherwise."""
    if basis == "spend":
        return currency(value)
    return f"{value:.0f}" if value == value.to_integral_value() else str(value)


class TierForm(forms.ModelForm):
    """A tier: its place in the ranking, what reaches it and what it gives.

    The code names the tier's group (``loyalty:<code>``), so it is fixed once the
    tier exists: the field is disabled on edit and a posted code is ignored.
    Thresholds must rise with rank, or a higher tier would be easier to reach.
    """

    class Meta:
        model = Tier
        fields = [
            "code",
            "name",
            "rank",
            "threshold",
            "points_multiplier",
            "discount_percent",
            "free_shipping",
            "badge",
            "colour",
            "description",
        ]
        widgets = {
            "colour": forms.TextInput(attrs={"type": "color"}),
            "description": forms.Textarea(attrs={"rows": 3}),
        }
        error_messages = {
            "code": {
                "unique": _("Another tier already has this code."),
                "invalid": _(
                    "Use only lower-case letters, numbers, hyphens and underscores, "
                    "e.g. gold."
                ),
            },
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.basis = loyalty_settings.TIER_BASIS
        self.fields["threshold"].label = threshold_label(self.basis)
        self.fields["points_multiplier"].help_text = _(
            "Points earned in this tier are multiplied by this (0 to 10)."
        )
        self.fields["discount_percent"].help_text = _("From 0 to 100.")
        self.fields["colour"].help_text = _("A colour as #rrggbb, e.g. #d4af37.")
        if self.instance.pk:
            self.fields["code"].disabled = True
            self.fields["code"].help_text = _(
                "The code names the tier's group and cannot be changed."
            )

    def other_tiers(self):
        tiers = Tier.objects.all()
        if self.instance.pk:
            tiers = tiers.exclude(pk=self.instance.pk)
        return tiers

    def clean_code(self):
        code = self.cleaned_data["code"]
        if not self.instance.pk and code != code.lower():
            raise forms.ValidationError(
                self.Meta.error_messages["code"]["invalid"], code="invalid"
            )
        return code

    def clean_rank(self):
        rank = self.cleaned_data["rank"]
        taken = self.other_tiers().filter(rank=rank).first()
        if taken is not None:
            raise forms.ValidationError(
                _("Rank %(rank)s is already taken by %(name)s."),
                code="unique",
                params={"rank": rank, "name": taken.name},
            )
        return rank

    def clean_threshold(self):
        threshold = self.cleaned_data["threshold"]
        if threshold is None:
            return threshold
        if threshold < 0:
            raise forms.ValidationError(
                _("The threshold cannot be negative."), code="negative"
            )
        if self.basis != "spend" and threshold != threshold.to_integral_value():
            raise forms.ValidationError(
                _("Enter a whole number: the programme counts points or orders."),
                code="fraction",
            )
        return threshold

    def clean_points_multiplier(self):
        multiplier = self.cleaned_data["points_multiplier"]
        if multiplier is not None and not 0 <= multiplier <= MAX_TIER_MULTIPLIER:
            raise forms.ValidationError(
                _("The points multiplier must be between 0 and 10."), code="range"
            )
        return multiplier

    def clean_discount_percent(self):
        discount = self.cleaned_data["discount_percent"]
        if discount is not None and not 0 <= discount <= 100:
            raise forms.ValidationError(
                _("The discount must be between 0 and 100 percent."), code="range"
            )
        return discount

    def clean_colour(self):
        # The model field's validator has checked it is #rrggbb.
        return self.cleaned_data["colour"].lower()

    def clean(self):
        cleaned_data = super().clean()
        rank, threshold = cleaned_data.get("rank"), cleaned_data.get("threshold")
        if rank is None or threshold is None:
            return cleaned_data
        others = self.other_tiers()
        lower = (
            others.filter(rank__lt=rank, threshold__gte=threshold)
            .order_by("-threshold", "-rank")
            .first()
        )
        higher = (
            others.filter(rank__gt=rank, threshold__lte=threshold)
            .order_by("threshold", "rank")
            .first()
        )
        if lower is not None:
            self.add_error(
                "threshold",
                forms.ValidationError(
                    _(
                        "Thresholds rise with rank: this one must be above "
                        "%(threshold)s, the threshold of %(name)s (rank %(rank)s)."
                    ),
                    code="not_rising",
                    params={
                        "threshold": format_threshold(lower.threshold, self.basis),
                        "name": lower.name,
                        "rank": lower.rank,
                    },
                ),
            )
        elif higher is not None:
            self.add_error(
                "threshold",
                forms.ValidationError(
                    _(
                        "Thresholds rise with rank: this one must be below "
                        "%(threshold)s, the threshold of %(name)s (rank %(rank)s)."
                    ),
                    code="not_rising",
                    params={
                        "threshold": format_threshold(higher.threshold, self.basis),
                        "name": higher.name,
                        "rank": higher.rank,
                    },
                ),
            )
        return cleaned_data


class SetTierForm(forms.Form):
    """Staff put a member in a tier (or none), with a reason and an optional date
    until which no review moves them down."""

    tier = forms.ModelChoiceField(
        label=_("Tier"),
        queryset=Tier.objects.order_by("rank"),
        required=False,
        empty_label=_("No tier"),
        help_text=_(
            "A member put below what their activity reaches moves up again at their "
            "next confirmed order or review: protection only keeps members from "
            "moving down."
        ),
    )
    reason = forms.CharField(
        label=_("Reason"),
        max_length=255,
        help_text=_(
            "Kept in the member's tier history with your name, for staff only."
        ),
        error_messages={"required": TierReasonRequired.default_message},
    )
    protect_until = forms.DateField(
        label=_("Protect until"),
        required=False,
        widget=widgets.DatePickerInput(),
        help_text=_(
            "Optional: no review moves the member down before the end of this day."
        ),
    )


# Coupons ---------------------------------------------------------------------------


class CouponDesignForm(forms.ModelForm):
    """A coupon design: what its coupons give, for how long, to whom.

    The benefit and the minimum spend live on the design's Oscar offer, so coupons
    already issued follow a change to them; how long a coupon lasts and whether it
    is used up by one order are set on each coupon when it is issued, so a change
    to them reaches new coupons only. Free shipping and a free product have no
    value: it is stored as 0 whatever was typed; only a free product keeps its
    product.
    """

    class Meta:
        model = CouponDesign
        fields = [
            "name",
            "purpose",
            "benefit_type",
            "value",
            "product",
            "minimum_spend",
            "valid_days",
            "multi_use",
            "tier",
            "is_active",
        ]
        widgets = {"product": ProductSelect}
        error_messages = {
            "name": {"required": _("Give the design a name, e.g. Birthday treat.")},
            "valid_days": {
                "min_value": _("A coupon must be valid for at least one day."),
            },
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tier"].queryset = Tier.objects.order_by("rank")
        self.fields["tier"].empty_label = _("Any member")
        # A parent product cannot be bought, only its variants.
        self.fields["product"].queryset = Product.objects.exclude(
            structure=Product.PARENT
        )
        self.fields["product"].help_text = _(
            "For a free product only: one item of it costs nothing."
        )
        self.fields["value"].required = False
        self.fields["value"].help_text = _(
            "Percent off (more than 0, at most 100) or amount off in %(currency)s "
            "(more than 0); not used for free shipping or a free product."
        ) % {"currency": settings.OSCAR_DEFAULT_CURRENCY}
        self.fields["minimum_spend"].help_text = _(
            "The basket must reach this amount in %(currency)s; 0 for none."
        ) % {"currency": settings.OSCAR_DEFAULT_CURRENCY}
        if self.instance.pk:
            self.fields["value"].help_text += " " + _(
                "Coupons already issued follow changes to the benefit and the "
                "minimum spend."
            )
            self.fields["valid_days"].help_text = _(
                "From the day it is issued. Coupons already issued keep their end."
            )
            self.fields["multi_use"].help_text = _(
                "Otherwise a coupon is used up by its first order. Coupons already "
                "issued keep how they were issued."
            )

    def clean_valid_days(self):
        days = self.cleaned_data["valid_days"]
        if days is not None and days < 1:
            raise forms.ValidationError(
                _("A coupon must be valid for at least one day."), code="too_short"
            )
        return days

    def clean_minimum_spend(self):
        minimum = self.cleaned_data["minimum_spend"]
        if minimum is not None and minimum < 0:
            raise forms.ValidationError(
                _("The minimum spend cannot be negative: enter 0 for none."),
                code="negative",
            )
        return minimum

    def clean(self):
        cleaned_data = super().clean()
        self.clean_benefit(cleaned_data)
        purpose = cleaned_data.get("purpose")
        if purpose == CouponDesign.Purpose.TIER and not cleaned_data.get("tier"):
            self.add_error(
                "tier",
                forms.ValidationError(
                    _(
                        "Choose the tier whose members get this coupon: "
                        "tier-exclusive coupons need one."
                    ),
                    code="tier_required",
                ),
            )
        return cleaned_data

    def clean_benefit(self, cleaned_data):
        benefit = cleaned_data.get("benefit_type")
        value = cleaned_data.get("value")
        if benefit != CouponDesign.BenefitType.PRODUCT:
            cleaned_data["product"] = None
            self.errors.pop("product", None)  # whatever was chosen is not used
        elif cleaned_data.get("product") is None and "product" not in self.errors:
            self.add_error(
                "product",
                forms.ValidationError(
                    _("Choose the product the coupon makes free."),
                    code="product_required",
                ),
            )
        if benefit in (
            CouponDesign.BenefitType.SHIPPING,
            CouponDesign.BenefitType.PRODUCT,
        ):
            cleaned_data["value"] = Decimal(0)
            self.errors.pop("value", None)  # whatever was typed is not used
            return
        if "value" in self.errors:
            return
        if benefit == CouponDesign.BenefitType.PERCENTAGE and (
            value is None or not 0 < value <= 100
        ):
            self.add_error(
                "value",
                forms.ValidationError(
                    _("Enter a percentage more than 0 and at most 100."),
                    code="percent_range",
                ),
            )
        elif benefit == CouponDesign.BenefitType.FIXED and (
            value is None or value <= 0
        ):
            self.add_error(
                "value",
                forms.ValidationError(
                    _("Enter an amount off greater than zero."), code="not_positive"
                ),
            )


class CouponSearchForm(forms.Form):
    """Issued coupons by code, member, design and state (all optional)."""

    STATES = (
        ("usable", _("Usable")),
        ("used", _("Used")),
        ("expired", _("Expired")),
    )

    q = forms.CharField(
        label=_("Coupon code, member number or e-mail"),
        required=False,
        max_length=254,
    )
    design = forms.ModelChoiceField(
        label=_("Design"),
        queryset=CouponDesign.objects.order_by("name"),
        required=False,
        empty_label=_("All designs"),
    )
    state = forms.ChoiceField(
        label=_("State"),
        choices=(("", _("Any state")), *STATES),
        required=False,
    )

    def filter(self, queryset, now):
        """``queryset`` narrowed to the coupons asked for; none if the form is bad.

        The code and the member number are matched exactly (both are stored in
        capitals, so the match is case-insensitive and uses their indexes); the
        e-mail address exactly but for case.
        """
        if not self.is_valid():
            return queryset.none()
        query = self.cleaned_data["q"].strip()
        if query:
            queryset = queryset.filter(
                Q(voucher__code=query.upper())
                | Q(member__number=query.upper())
                | Q(member__user__email__iexact=query)
            )
        if self.cleaned_data["design"] is not None:
            queryset = queryset.filter(design=self.cleaned_data["design"])
        state = self.cleaned_data["state"]
        if state == "usable":
            queryset = queryset.usable(now)
        elif state == "used":
            queryset = queryset.used()
        elif state == "expired":
            queryset = queryset.expired(now)
        return queryset


class IssueCouponForm(forms.Form):
    """Staff give a member a coupon of an issuing design, with a reason.

    ``key`` works as the adjustment form's: the form's token for
    :func:`~oscar_loyalty.services.coupons.issue_by_staff`.
    """

    design = forms.ModelChoiceField(
        label=_("Coupon"),
        queryset=CouponDesign.objects.filter(is_active=True).select_related("tier"),
        empty_label=None,
        error_messages={
            "required": _("Choose a coupon design that is issuing coupons."),
            "invalid_choice": _(
                "This coupon design is not issuing coupons (any more): choose another."
            ),
        },
    )
    reason = forms.CharField(
        label=_("Reason"),
        max_length=255,
        help_text=_("Kept with the coupon and your name, for staff only."),
        error_messages={"required": CouponReasonRequired.default_message},
    )
    key = forms.UUIDField(
        widget=forms.HiddenInput,
        error_messages=AdjustmentForm.base_fields["key"].error_messages,
    )

    def __init__(self, *args, member=None, **kwargs):
        # A new key each time the form is shown: the coupon service issues one
        # coupon per key, so a double click or a replayed request issues one.
        kwargs.setdefault("initial", {}).setdefault("key", uuid.uuid4())
        super().__init__(*args, **kwargs)
        self.member = member
        self.fields["design"].queryset = self.fields["design"].queryset.order_by("name")

    def clean(self):
        cleaned_data = super().clean()
        design = cleaned_data.get("design")
        if design is None or design.tier_id is None or self.member is None:
            return cleaned_data
        member_tier = self.member.tier
        if member_tier is None or member_tier.rank < design.tier.rank:
            self.add_error(
                "design",
                forms.ValidationError(
                    _(
                        "“%(design)s” is for members of %(tier)s and above: this "
                        "member could not use it."
                    ),
                    code="below_tier",
                    params={"design": design.name, "tier": design.tier.name},
                ),
            )
        return cleaned_data


# Rewards ---------------------------------------------------------------------------


def clean_window(form, cleaned_data):
    """An end before (or at) the start is refused on the end field, so the model's
    constraint is not reported a second time."""
    starts_at, ends_at = cleaned_data.get("starts_at"), cleaned_data.get("ends_at")
    if starts_at and ends_at and ends_at <= starts_at:
        form.add_error(
            "ends_at",
            forms.ValidationError(
                _("The end must be after the start."), code="ends_before_start"
            ),
        )


class RewardDesignChoiceField(forms.ModelChoiceField):
    """A "bought with points" design, marked when it is switched off (a reward of
    such a design cannot be redeemed)."""

    def label_from_instance(self, obj):
        if obj.is_active:
            return obj.name
        return _("%(name)s (not issuing)") % {"name": obj.name}


class RewardForm(forms.ModelForm):
    """An item of the rewards catalogue: a coupon design bought with points.

    Only designs whose purpose is "bought with points" are offered, switched off
    or not: a reward whose design is switched off is kept but cannot be redeemed.
    """

    design = RewardDesignChoiceField(
        label=_("Coupon design"),
        queryset=CouponDesign.objects.none(),
        help_text=_(
            "What the member receives: a coupon of this design. Only designs made "
            "for rewards (purpose “Bought with points”) can be chosen; a design "
            "that is not issuing makes the reward unavailable."
        ),
        error_messages={
            "required": _("Choose the coupon design the member receives."),
            "invalid_choice": _(
                "Choose a coupon design made for rewards (purpose “Bought with "
                "points”)."
            ),
        },
    )
    starts_at = forms.DateTimeField(
        label=_("Available from"),
        required=False,
        widget=widgets.DateTimePickerInput(),
        help_text=_("Leave empty to offer it at once."),
    )
    ends_at = forms.DateTimeField(
        label=_("Available until"),
        required=False,
        widget=widgets.DateTimePickerInput(),
        help_text=_("Leave empty to offer it until you deactivate it."),
    )
    #: The stock the form showed: members redeeming while staff edit change it.
    stock_seen = forms.IntegerField(required=False, widget=forms.HiddenInput)

    class Meta:
        model = Reward
        fields = [
            "name",
            "description",
            "design",
            "points_price",
            "stock",
            "tiers",
            "per_member_limit",
            "starts_at",
            "ends_at",
            "is_active",
            "refund_unused",
            "position",
        ]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}
        error_messages = {
            "name": {"required": _("Give the reward a name, e.g. ¥20 voucher.")},
            "points_price": {
                "required": _("Enter the price in points."),
                "invalid": _("Enter a whole number of points, such as 2000."),
                "min_value": _("The price must be at least one point."),
            },
            "stock": {
                "invalid": _("Enter a whole number, or leave it empty."),
                "min_value": _("The stock cannot be negative: enter 0 for none left."),
            },
            "per_member_limit": {
                "invalid": _("Enter a whole number, or leave it empty."),
                "min_value": _(
                    "The limit must be at least 1; leave it empty for no limit."
                ),
            },
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["design"].queryset = CouponDesign.objects.filter(
            purpose=CouponDesign.Purpose.REWARD
        ).order_by("-is_active", "name", "pk")
        self.fields["tiers"].queryset = Tier.objects.order_by("rank")
        self.fields["stock"].help_text = _(
            "How many can still be redeemed; each redemption takes one. Leave "
            "empty for unlimited."
        )
        self.fields["per_member_limit"].help_text = _(
            "How many times one member may redeem it. Leave empty for no limit."
        )
        self.fields["position"].help_text = _(
            "The catalogue lists lower numbers first."
        )
        if self.instance.pk:
            self.fields["stock_seen"].initial = self.instance.stock

    def clean_points_price(self):
        price = self.cleaned_data["points_price"]
        if price is not None and price <= 0:
            raise forms.ValidationError(
                _("The price must be at least one point."), code="not_positive"
            )
        return price

    def clean_stock(self):
        stock = self.cleaned_data["stock"]
        if stock is not None and stock < 0:
            raise forms.ValidationError(
                _("The stock cannot be negative: enter 0 for none left."),
                code="negative",
            )
        return stock

    def clean_per_member_limit(self):
        limit = self.cleaned_data["per_member_limit"]
        if limit is not None and limit <= 0:
            raise forms.ValidationError(
                _("The limit must be at least 1; leave it empty for no limit."),
                code="not_positive",
            )
        return limit

    def clean(self):
        cleaned_data = super().clean()
        clean_window(self, cleaned_data)
        self._check_stock_unchanged(cleaned_data)
        return cleaned_data

    def _check_stock_unchanged(self, cleaned_data):
        """Saving must not put back stock members redeemed while staff edited:
        the form refuses and shows the stock left now."""
        if not self.instance.pk or "stock" not in cleaned_data:
            return
        now = Reward.objects.filter(pk=self.instance.pk).values_list("stock", flat=True)
        current = now.first()
        if current == cleaned_data.get("stock_seen"):
            return
        self.data = self.data.copy()
        self.data["stock"] = "" if current is None else str(current)
        self.data["stock_seen"] = "" if current is None else str(current)
        self.add_error(
            "stock",
            _(
                "Members redeemed this reward while you were editing: the stock is "
                "%(stock)s now. Check it and save again."
            )
            % {"stock": _("unlimited") if current is None else current},
        )


# Campaigns -------------------------------------------------------------------------

#: The largest campaign multiplier: ×10 is already a big promotion, and it keeps
#: a slip of the keyboard (20 for 2.0) from costing a fortune in points.
MAX_CAMPAIGN_MULTIPLIER = Decimal(10)
MIN_CAMPAIGN_MULTIPLIER = Decimal("1.01")
#: Spend-X-save-Y steps one campaign may have.
MAX_CAMPAIGN_STEPS = 10


class CampaignForm(forms.ModelForm):
    """A campaign: its kind, window, audience, products and what it gives.

    Only the fields of the chosen kind are checked; the others keep their stored
    value (a new campaign's defaults), since the campaign's offer reads only its
    kind's. The steps of a spend-X-save-Y campaign are a formset beside this form
    (:class:`CampaignStepFormSet`).
    """

    starts_at = forms.DateTimeField(
        label=_("Starts"),
        widget=widgets.DateTimePickerInput(),
        error_messages={"required": _("Enter when the campaign starts.")},
    )
    ends_at = forms.DateTimeField(
        label=_("Ends"),
        widget=widgets.DateTimePickerInput(),
        error_messages={"required": _("Enter when the campaign ends.")},
    )

    segments = forms.MultipleChoiceField(
        label=_("Audience segments"),
        choices=SEGMENT_CHOICES,
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_(
            "Only members in one of these segments of the newest scoring run "
            "(members who agreed to profiling); none chosen: any member."
        ),
    )

    class Meta:
        model = Campaign
        fields = [
            "name",
            "description",
            "kind",
            "starts_at",
            "ends_at",
            "tiers",
            "segments",
            "range",
            "multiplier",
            "discount_percent",
            "coupon_design",
            "is_active",
        ]
        widgets = {"description": forms.Textarea(attrs={"rows": 3})}
        error_messages = {
            "name": {"required": _("Give the campaign a name, e.g. Member day.")},
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["tiers"].queryset = Tier.objects.order_by("rank")
        # Not the one-product ranges of free-product coupon designs: they follow
        # their design.
        self.fields["range"].queryset = Range.objects.exclude(
            pk__in=CouponDesign.objects.filter(product_range__isnull=False).values(
                "product_range"
            )
        ).order_by("name")
        self.fields["range"].empty_label = _("All products")
        designs = Q(is_active=True)
        if self.instance.coupon_design_id:
            designs |= Q(pk=self.instance.coupon_design_id)
        self.fields["coupon_design"].queryset = (
            CouponDesign.objects.filter(designs)
            .select_related("tier")
            .order_by("name", "pk")
        )
        self.fields["coupon_design"].empty_label = _("No coupon")
        self.fields["kind"].help_text = _(
            "Bonus points: a points multiplier. Member-day discount: a percentage "
            "off. Spend X, save Y: amounts off at the steps below."
        )
        self.fields["multiplier"].help_text = _(
            "Bonus points only: more than 1 and at most 10; 2 is double points."
        )
        self.fields["discount_percent"].help_text = _(
            "Member-day discount only: more than 0 and at most 100."
        )
        self.fields["coupon_design"].help_text = _(
            "Optional: a coupon issued once to each member of the audience when "
            "the campaign starts."
        )
        if self.instance.coupons_issued_at:
            self.fields["coupon_design"].help_text += " " + _(
                "This campaign has handed out its coupons already: a change reaches "
                "nobody."
            )
        for name in ("multiplier", "discount_percent"):
            self.fields[name].required = False
            self.fields[name].widget.attrs["data-campaign-kind"] = {
                "multiplier": Campaign.Kind.POINTS,
                "discount_percent": Campaign.Kind.DISCOUNT,
            }[name]

    def clean(self):
        cleaned_data = super().clean()
        clean_window(self, cleaned_data)
        kind = cleaned_data.get("kind")
        self.check_multiplier(kind, cleaned_data)
        self.check_discount(kind, cleaned_data)
        self.check_coupon_audience(cleaned_data)
        return cleaned_data

    def keep_stored(self, name, cleaned_data):
        """A field another kind uses: whatever was typed is not used."""
        self.errors.pop(name, None)
        cleaned_data[name] = getattr(self.instance, name)

    def check_multiplier(self, kind, cleaned_data):
        if kind != Campaign.Kind.POINTS:
            self.keep_stored("multiplier", cleaned_data)
            return
        if "multiplier" in self.errors:
            return
        multiplier = cleaned_data.get("multiplier")
        if multiplier is None or not (
            MIN_CAMPAIGN_MULTIPLIER <= multiplier <= MAX_CAMPAIGN_MULTIPLIER
        ):
            self.add_error(
                "multiplier",
                forms.ValidationError(
                    _(
                        "Enter a multiplier more than 1 and at most 10, e.g. 2 for "
                        "double points."
                    ),
                    code="multiplier_range",
                ),
            )

    def check_discount(self, kind, cleaned_data):
        if kind != Campaign.Kind.DISCOUNT:
            self.keep_stored("discount_percent", cleaned_data)
            return
        if "discount_percent" in self.errors:
            return
        discount = cleaned_data.get("discount_percent")
        if discount is None or not 0 < discount <= 100:
            self.add_error(
                "discount_percent",
                forms.ValidationError(
                    _("Enter a discount more than 0 and at most 100 percent."),
                    code="percent_range",
                ),
            )

    def check_coupon_audience(self, cleaned_data):
        """A tier-exclusive coupon only for an audience that can use it."""
        design = cleaned_data.get("coupon_design")
        if design is None or design.tier_id is None or "tiers" in self.errors:
            return
        audience = cleaned_data.get("tiers") or []
        if not audience or any(tier.rank < design.tier.rank for tier in audience):
            self.add_error(
                "coupon_design",
                forms.ValidationError(
                    _(
                        "“%(design)s” is for members of %(tier)s and above: choose "
                        "only audience tiers of %(tier)s or above, or another coupon."
                    ),
                    code="below_tier",
                    params={"design": design.name, "tier": design.tier.name},
                ),
            )


class CampaignStepForm(forms.ModelForm):
    """One spend-X-save-Y step: spend ``threshold`` on the campaign's products,
    save ``amount``."""

    class Meta:
        model = CampaignStep
        fields = ["threshold", "amount"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        currency_code = settings.OSCAR_DEFAULT_CURRENCY
        self.fields["threshold"].label = _("Spend (%(currency)s)") % {
            "currency": currency_code
        }
        self.fields["amount"].label = _("Save (%(currency)s)") % {
            "currency": currency_code
        }

    def _get_validation_exclusions(self):
        """Distinct spends are checked across the formset (steps being deleted
        or changed in the same save included), not against the stored steps."""
        return {*super()._get_validation_exclusions(), "campaign"}

    def clean(self):
        cleaned_data = super().clean()
        threshold, amount = cleaned_data.get("threshold"), cleaned_data.get("amount")
        if amount is not None and amount <= 0:
            self.add_error(
                "amount",
                forms.ValidationError(
                    _("The saving must be more than zero."), code="not_positive"
                ),
            )
        elif threshold is not None and amount is not None and amount >= threshold:
            self.add_error(
                "amount",
                forms.ValidationError(
                    _("The saving must be less than the spend."),
                    code="not_below_spend",
                ),
            )
        return cleaned_data


class BaseCampaignStepFormSet(forms.BaseInlineFormSet):
    """The steps of a campaign: distinct spends, at least one for spend-X-save-Y.

    ``required`` says whether the campaign needs steps (its kind, from the
    campaign form); the view only saves them for a spend-X-save-Y campaign.
    """

    def __init__(self, *args, required=False, **kwargs):
        self.required = required
        super().__init__(*args, **kwargs)

    def kept_forms(self):
        """The forms that hold a step after saving (filled in, not deleted)."""
        return [
            form
            for form in self.forms
            if (form.instance.pk or form.has_changed())
            and not self._should_delete_form(form)
        ]

    def clean(self):
        # Not the model formset's own unique check: it compares with the stored
        # steps, so deleting a step and adding one of the same spend would fail.
        if any(self.errors):
            return
        seen = set()
        for form in self.kept_forms():
            threshold = form.cleaned_data.get("threshold")
            if threshold is None:
                continue
            if threshold in seen:
                raise forms.ValidationError(
                    _(
                        "Two steps have the same spend, %(spend)s: give each step "
                        "its own."
                    ),
                    code="duplicate_threshold",
                    params={"spend": currency(threshold)},
                )
            seen.add(threshold)
        if self.required and not seen:
            raise forms.ValidationError(
                _("A spend-X-save-Y campaign needs at least one step."),
                code="no_steps",
            )


CampaignStepFormSet = forms.inlineformset_factory(
    Campaign,
    CampaignStep,
    form=CampaignStepForm,
    formset=BaseCampaignStepFormSet,
    extra=3,
    max_num=MAX_CAMPAIGN_STEPS,
    validate_max=True,
    can_delete=True,
)


# Action rewards --------------------------------------------------------------------


class ActionRuleForm(forms.ModelForm):
    """How many points an action earns and how often (a cap per period)."""

    class Meta:
        model = ActionRule
        fields = ["points", "cap", "cap_period", "is_active"]
        error_messages = {
            "points": {
                "required": _("Enter the points the action earns."),
                "invalid": _("Enter a whole number of points, such as 10."),
                "min_value": _("The points must be at least 1."),
            },
            "cap": {
                "invalid": _("Enter a whole number, or leave it empty."),
                "min_value": _(
                    "The cap must be at least 1; leave it empty for no cap."
                ),
            },
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["cap"].help_text = _(
            "How many times a member earns it per period. Leave empty for no cap."
        )
        self.fields["cap_period"].help_text = _(
            "The period the cap counts over, in the shop's time zone."
        )

    def clean_points(self):
        points = self.cleaned_data["points"]
        if points is not None and points <= 0:
            raise forms.ValidationError(
                _("The points must be at least 1."), code="not_positive"
            )
        return points

    def clean_cap(self):
        cap = self.cleaned_data["cap"]
        if cap is not None and cap <= 0:
            raise forms.ValidationError(
                _("The cap must be at least 1; leave it empty for no cap."),
                code="not_positive",
            )
        return cap


# Referrals -------------------------------------------------------------------------


class ReferralSearchForm(forms.Form):
    """Referrals by status and by member (either side), both optional."""

    q = forms.CharField(
        label=_("Member number or e-mail"),
        required=False,
        max_length=254,
    )
    status = forms.ChoiceField(
        label=_("Status"),
        choices=(("", _("Any status")), *Referral.Status.choices),
        required=False,
    )

    def filter(self, queryset):
        """``queryset`` narrowed to the referrals asked for; none if the form is bad.

        A member number is matched exactly (stored in capitals, so the match uses
        its index), an e-mail address exactly but for case, on the referrer or
        the new member.
        """
        if not self.is_valid():
            return queryset.none()
        query = self.cleaned_data["q"].strip()
        if query:
            queryset = queryset.filter(
                Q(referrer__number=query.upper())
                | Q(referred__number=query.upper())
                | Q(referrer__user__email__iexact=query)
                | Q(referred__user__email__iexact=query)
            )
        if self.cleaned_data["status"]:
            queryset = queryset.filter(status=self.cleaned_data["status"])
        return queryset


class DateRangeForm(forms.Form):
    """Optional first and last days (the shop's time zone), in order."""

    date_from = forms.DateField(
        label=_("From"), required=False, widget=widgets.DatePickerInput()
    )
    date_to = forms.DateField(
        label=_("Until"), required=False, widget=widgets.DatePickerInput()
    )

    def clean(self):
        cleaned = super().clean()
        start, end = cleaned.get("date_from"), cleaned.get("date_to")
        if start and end and start > end:
            raise forms.ValidationError(_("The first date is after the last."))
        return cleaned

    def filter_days(self, queryset, field):
        """``queryset`` narrowed to ``field`` within the days asked for."""
        data = self.cleaned_data
        if data["date_from"]:
            queryset = queryset.filter(
                **{f"{field}__gte": start_of_day(data["date_from"])}
            )
        if data["date_to"]:
            queryset = queryset.filter(
                **{f"{field}__lt": start_of_day(data["date_to"] + timedelta(days=1))}
            )
        return queryset


class AuditLogSearchForm(DateRangeForm):
    """The staff audit log by staff user, kind of record, action, dates and
    words of the change; every field optional."""

    field_order = ["staff", "kind", "action", "date_from", "date_to", "q"]

    ACTIONS = (
        ("", _("Any action")),
        (str(ADDITION), _("Created")),
        (str(CHANGE), _("Changed")),
        (str(DELETION), _("Deleted")),
    )

    staff = forms.CharField(
        label=_("Staff user (name or e-mail)"), required=False, max_length=254
    )
    kind = forms.ChoiceField(label=_("Record"), required=False)
    action = forms.ChoiceField(label=_("Action"), choices=ACTIONS, required=False)
    q = forms.CharField(label=_("Words of the change"), required=False, max_length=200)

    def __init__(self, *args, content_types=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.content_types = {str(ct.pk): ct for ct in content_types}
        self.fields["kind"].choices = [("", _("Any record"))] + sorted(
            (
                (pk, str(ct.model_class()._meta.verbose_name).capitalize())
                for pk, ct in self.content_types.items()
                if ct.model_class() is not None
            ),
            key=lambda choice: choice[1],
        )

    def filter(self, entries):
        """``entries`` narrowed as asked; none when the form is bad."""
        if not self.is_valid():
            return entries.none()
        data = self.cleaned_data
        if data["staff"].strip():
            staff = data["staff"].strip()
            entries = entries.filter(
                Q(user__username__icontains=staff) | Q(user__email__icontains=staff)
            )
        if data["kind"]:
            entries = entries.filter(content_type_id=int(data["kind"]))
        if data["action"]:
            entries = entries.filter(action_flag=int(data["action"]))
        entries = self.filter_days(entries, "action_time")
        if data["q"].strip():
            words = data["q"].strip()
            entries = entries.filter(
                Q(change_message__icontains=words) | Q(object_repr__icontains=words)
            )
        return entries


def start_of_day(day):
    """Midnight starting ``day`` in the shop's time zone."""
    return timezone.make_aware(
        datetime.combine(day, time.min), timezone.get_default_timezone()
    )


class LedgerSearchForm(DateRangeForm):
    """The points ledger by member, kind of posting and dates; all optional."""

    field_order = ["member", "kind", "date_from", "date_to"]

    member = forms.CharField(
        label=_("Member number or e-mail"), required=False, max_length=254
    )
    kind = forms.ChoiceField(
        label=_("Kind"),
        choices=(("", _("Any kind")), *Posting.Kind.choices),
        required=False,
    )

    def filter(self, postings):
        if not self.is_valid():
            return postings.none()
        data = self.cleaned_data
        member = data["member"].strip()
        if member:
            postings = postings.filter(
                Q(member__number=member.upper()) | Q(member__user__email__iexact=member)
            )
        if data["kind"]:
            postings = postings.filter(kind=data["kind"])
        postings = self.filter_days(postings, "created_at")
        return postings


class WinBackRuleForm(forms.ModelForm):
    """What the shop does for members whose churn risk reaches a threshold."""

    class Meta:
        model = WinBackRule
        fields = [
            "name",
            "threshold",
            "action",
            "coupon_design",
            "multiplier",
            "days",
            "period_days",
            "holdout_percent",
            "priority",
            "is_active",
        ]
        error_messages = {
            "threshold": {
                "required": _("Enter the churn risk (1 to 100) that picks a member."),
                "invalid": _("Enter a whole number from 1 to 100."),
            },
            "multiplier": {"invalid": _("Enter a number such as 2 or 1.5.")},
            "days": {"invalid": _("Enter a whole number of days.")},
            "period_days": {"invalid": _("Enter a whole number of days.")},
            "holdout_percent": {"invalid": _("Enter a whole number from 0 to 50.")},
        }

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        designs = CouponDesign.objects.filter(
            purpose=CouponDesign.Purpose.WINBACK
        ).order_by("-is_active", "name")
        self.fields["coupon_design"].queryset = designs
        self.fields["coupon_design"].help_text = _(
            "For a coupon: a coupon design whose purpose is win-back."
        )

    def clean_threshold(self):
        threshold = self.cleaned_data["threshold"]
        if threshold is not None and not 1 <= threshold <= 100:
            raise forms.ValidationError(
                _("Enter a whole number from 1 to 100."), code="out_of_range"
            )
        return threshold

    def clean_holdout_percent(self):
        share = self.cleaned_data["holdout_percent"]
        if share is not None and share > 50:
            raise forms.ValidationError(
                _("At most half of the members picked can be the control group."),
                code="too_large",
            )
        return share

    def clean_days(self):
        return self._at_least_one("days")

    def clean_period_days(self):
        return self._at_least_one("period_days")

    def _at_least_one(self, name):
        value = self.cleaned_data[name]
        if value is not None and value < 1:
            raise forms.ValidationError(_("Enter at least 1 day."), code="too_small")
        return value

    def clean(self):
        cleaned = super().clean()
        action = cleaned.get("action")
        if action == WinBackRule.Action.COUPON and not cleaned.get("coupon_design"):
            self.add_error(
                "coupon_design", _("Choose the coupon to send, or another action.")
            )
        multiplier = cleaned.get("multiplier")
        if action == WinBackRule.Action.POINTS and multiplier is not None:
            if multiplier <= 1:
                self.add_error(
                    "multiplier",
                    _("Extra points need a multiplier above 1, such as 2."),
                )
        if multiplier is not None and multiplier <= 1:
            # Kept valid for the other actions (the database requires it).
            cleaned["multiplier"] = Decimal(2)
        return cleaned


class AnalyticsPeriodForm(DateRangeForm):
    """The period the analytics page shows (the last 30 days when not given),
    compared with the period of the same length before it."""

    MAX_DAYS = 731
    EARLIEST = date(2000, 1, 1)

    def period(self):
        from ..analytics import Period, default_period

        if not self.is_valid() or "first" not in self.cleaned_data:
            return default_period()
        return Period(self.cleaned_data["first"], self.cleaned_data["last"])

    def clean(self):
        cleaned = super().clean()
        first, last = cleaned.get("date_from"), cleaned.get("date_to")
        if not first and not last:
            return cleaned
        today = timezone.localdate()
        if any(day < self.EARLIEST or day > today for day in (first, last) if day):
            raise forms.ValidationError(
                _("Choose days between %(earliest)s and today.")
                % {"earliest": self.EARLIEST.isoformat()}
            )
        last = last or min(first + timedelta(days=29), today)
        first = first or last - timedelta(days=29)
        if first > last:
            raise forms.ValidationError(_("The first date is after the last."))
        if first < self.EARLIEST:
            raise forms.ValidationError(
                _("Choose days between %(earliest)s and today.")
                % {"earliest": self.EARLIEST.isoformat()}
            )
        if (last - first).days >= self.MAX_DAYS:
            raise forms.ValidationError(
                _(
                    "Choose at most two years: the figures are compared with the "
                    "period of the same length before."
                )
            )
        cleaned.update(first=first, last=last)
        return cleaned
