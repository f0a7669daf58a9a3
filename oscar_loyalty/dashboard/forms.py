"""Forms of the owner's loyalty screens.

They check what a person can get wrong (a fraction of a point, a missing reason, a
multiplier of zero) and say so on the form. The ledger services check again under
the member's row lock, since a balance can change between the form and the write.
"""

import uuid

from django import forms
from django.db.models import Q
from django.utils.translation import gettext_lazy as _
from oscar.core.loading import get_model
from oscar.forms import widgets

from ..models import EarnRule

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
