"""Forms of the owner's loyalty screens.

They check what a person can get wrong (a fraction of a point, a missing reason, a
multiplier of zero) and say so on the form. The ledger services check again under
the member's row lock, since a balance can change between the form and the write.
"""

import uuid
from decimal import Decimal

from django import forms
from django.conf import settings
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from oscar.core.loading import get_model
from oscar.forms import widgets
from oscar.templatetags.currency_filters import currency

from ..conf import loyalty_settings
from ..exceptions import TierReasonRequired
from ..models import EarnRule, Tier

Range = get_model("offer", "Range")

#: The largest number of points one adjustment may add or take away. It only keeps
#: a slip of the keyboard from overflowing the ledger's integers.
MAX_ADJUSTMENT = 1_000_000_000


class MemberSearchForm(forms.Form):
    q = forms.CharField(
        label=_("Member number, e-mail or name"),
        required=False,
        max_length=100,
    )

    def filter(self, queryset):
        """``queryset`` narrowed to members matching every word of the query.

        Each word may match the start of the member number or part of the customer's
        e-mail address, first or last name, so "mei lin" finds Mei Lin.
        """
        if not self.is_valid():
            return queryset.none()
        for word in self.cleaned_data["q"].split():
            queryset = queryset.filter(
                Q(number__startswith=word.upper())
                | Q(user__email__icontains=word)
                | Q(user__first_name__icontains=word)
                | Q(user__last_name__icontains=word)
            )
        return queryset


class AdjustmentForm(forms.Form):
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
