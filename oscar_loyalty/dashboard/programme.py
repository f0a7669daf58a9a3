"""The programme's settings as the owner changes them in the dashboard.

Each setting of :data:`oscar_loyalty.conf.EDITABLE` is a field of
:class:`ProgrammeSettingsForm`, shown with the value in force. Saving writes
only what the owner changed on the form (a colleague's change made meanwhile is
kept): a value different from the shop's Django setting is stored as a
:class:`~oscar_loyalty.models.ProgrammeSetting` row; a value equal to it
removes the row ("set back"). Each row written or removed leaves its own admin
log entry, "Label (NAME): before → after", in the same transaction.
"""

from decimal import Decimal, InvalidOperation

from django import forms
from django.conf import settings
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.db import transaction
from django.db.models import JSONField, Value
from django.utils.translation import gettext, gettext_noop
from django.utils.translation import gettext_lazy as _

from .. import checks
from ..conf import (
    EDITABLE,
    PREFIX,
    decode,
    loyalty_settings,
    site_settings,
)
from ..models import ProgrammeSetting

#: Human names of the settings, in English (the audit log's language); the
#: overview shows settings missing here by name alone.
SETTING_LABELS_EN = {
    "PROGRAMME_NAME": gettext_noop("Programme name"),
    "EXPIRY_MONTHS": gettext_noop("Points expire after (months)"),
    "EXPIRY_ROUNDING": gettext_noop("Expiry rounded up to"),
    "HOLD_TIMEOUT_MINUTES": gettext_noop(
        "Points applied to a basket are released after (minutes)"
    ),
    "EARN_RATE": gettext_noop("Points per unit of currency"),
    "EARN_ROUNDING": gettext_noop("Rounding of points per order line"),
    "EARN_INCLUDES_TAX": gettext_noop("Tax earns points"),
    "EARN_MINIMUM_ORDER": gettext_noop("Smallest order that earns points"),
    "CONFIRM_STATUSES": gettext_noop("Order statuses that confirm points"),
    "REVERSE_STATUSES": gettext_noop("Order statuses that take points back"),
    "REFUND_EVENT_CODES": gettext_noop("Payment events that take points back"),
    "CONFIRM_AFTER_DAYS": gettext_noop("Points confirmed after (days)"),
    "REMINDER_DAYS": gettext_noop("Expiry reminders (days before)"),
    "REDEEM_POINT_VALUE": gettext_noop("Value of one point"),
    "REDEEM_MINIMUM_BALANCE": gettext_noop("Points needed before redeeming"),
    "REDEEM_MAX_SHARE": gettext_noop("Largest share of a basket paid with points"),
    "REDEEM_STEP": gettext_noop("Points are applied in steps of"),
    "TIER_BASIS": gettext_noop("Tiers are reached by"),
    "TIER_WINDOW": gettext_noop("Tier qualification period"),
    "TIER_WINDOW_MONTHS": gettext_noop("Rolling period (months)"),
    "TIER_GRACE_DAYS": gettext_noop("Days of grace before a downgrade"),
    "BIRTHDAY_DAYS_AHEAD": gettext_noop("Birthday coupons issued days ahead"),
}
#: ... and in the language of the request.
SETTING_LABELS = {name: _(label) for name, label in SETTING_LABELS_EN.items()}

#: The form's sections, in order: (title, setting names).
SECTIONS = (
    (_("Programme"), ("PROGRAMME_NAME",)),
    (
        _("Earning"),
        ("EARN_RATE", "EARN_ROUNDING", "EARN_INCLUDES_TAX", "EARN_MINIMUM_ORDER"),
    ),
    (
        _("Pending points"),
        ("CONFIRM_AFTER_DAYS", "CONFIRM_STATUSES", "REVERSE_STATUSES"),
    ),
    (
        _("Paying with points"),
        (
            "REDEEM_POINT_VALUE",
            "REDEEM_MINIMUM_BALANCE",
            "REDEEM_MAX_SHARE",
            "REDEEM_STEP",
            "HOLD_TIMEOUT_MINUTES",
        ),
    ),
    (_("Expiry"), ("EXPIRY_MONTHS", "EXPIRY_ROUNDING", "REMINDER_DAYS")),
    (
        _("Tiers"),
        ("TIER_BASIS", "TIER_WINDOW", "TIER_WINDOW_MONTHS", "TIER_GRACE_DAYS"),
    ),
    (_("Birthdays"), ("BIRTHDAY_DAYS_AHEAD",)),
)

#: Settings held as decimal text ("1.5"); REDEEM_MAX_SHARE is shown as a percentage.
DECIMALS = ("EARN_RATE", "EARN_MINIMUM_ORDER", "REDEEM_POINT_VALUE", "REDEEM_MAX_SHARE")
PERCENT = ("REDEEM_MAX_SHARE",)
STATUS_LISTS = ("CONFIRM_STATUSES", "REVERSE_STATUSES")


def decimal_text(value):
    """ "1.5" for Decimal("1.50"), "100" for 1E+2: one spelling per amount."""
    return format(Decimal(str(value)).normalize(), "f")


def canonical(name, value):
    """A setting's value as stored and compared: decimals as their shortest
    text, lists for tuples, names as text (a translated default in the
    language of the request)."""
    if value is None:
        return None
    if name in DECIMALS:
        try:
            return decimal_text(value)
        except InvalidOperation:
            return str(value)
    if isinstance(value, tuple | list):
        return list(value)
    if name == "PROGRAMME_NAME":
        return str(value)
    return value


def shown(name, value, *, translated=False):
    """A value as people read it: lists joined, yes/no, a dash for none, the
    basket share as a percentage. In English for the audit log; ``translated``
    for the screens."""
    if value is None or value == [] or value == ():
        return "—"
    if isinstance(value, bool):
        if translated:
            return gettext("Yes") if value else gettext("No")
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value)
    if name in PERCENT:
        return f"{decimal_text(Decimal(str(value)) * 100)} %"
    return str(value)


def order_statuses():
    """Every order status the shop's pipeline names, in the pipeline's order,
    and any the programme already uses."""
    statuses = []
    pipeline = getattr(settings, "OSCAR_ORDER_STATUS_PIPELINE", {}) or {}
    for status, successors in pipeline.items():
        for name in (status, *successors):
            if name not in statuses:
                statuses.append(name)
    for values in (loyalty_settings, site_settings):
        for setting in STATUS_LISTS:
            for name in getattr(values, setting):
                if name not in statuses:
                    statuses.append(name)
    return statuses


class Proposed:
    """``values.NAME`` for the policy check: the form's values, then the ones
    in force."""

    def __init__(self, values):
        self._values = values

    def __getattr__(self, name):
        if name in self._values:
            return decode(name, self._values[name])
        return getattr(loyalty_settings, name)


def _whole(minimum, maximum=None, **kwargs):
    return forms.IntegerField(min_value=minimum, max_value=maximum, **kwargs)


class ProgrammeSettingsForm(forms.Form):
    PROGRAMME_NAME = forms.CharField(
        max_length=100,
        help_text=_(
            "Shown to shoppers wherever the programme is named. Once changed "
            "here, it is the same in every language of the shop."
        ),
    )
    EARN_RATE = forms.DecimalField(
        min_value=0,
        max_digits=14,
        decimal_places=6,
        help_text=_(
            "Points for each unit of currency of a line's price after discounts. "
            "Applies to orders placed from now on."
        ),
    )
    EARN_ROUNDING = forms.ChoiceField(
        choices=[
            ("floor", _("Down to a whole point")),
            ("round", _("To the nearest whole point (half up)")),
            ("ceil", _("Up to a whole point")),
        ]
    )
    EARN_INCLUDES_TAX = forms.BooleanField(
        required=False, help_text=_("Count the tax in the price that earns points.")
    )
    EARN_MINIMUM_ORDER = forms.DecimalField(
        min_value=0,
        max_digits=12,
        decimal_places=2,
        help_text=_("Orders below this total (shipping excluded) earn nothing."),
    )
    CONFIRM_AFTER_DAYS = _whole(
        1,
        365,
        required=False,
        help_text=_(
            "Pending points are confirmed this many days after the order was "
            "placed (the return window). Empty: only the statuses below "
            "confirm them."
        ),
    )
    CONFIRM_STATUSES = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_("An order reaching one of these confirms its pending points."),
    )
    REVERSE_STATUSES = forms.MultipleChoiceField(
        required=False,
        widget=forms.CheckboxSelectMultiple,
        help_text=_(
            "An order reaching one of these loses its points and gets back the "
            "points it was paid with."
        ),
    )
    REDEEM_POINT_VALUE = forms.DecimalField(
        min_value=Decimal("0.000001"),
        max_digits=14,
        decimal_places=6,
        help_text=_("The money one point takes off at checkout."),
    )
    REDEEM_MINIMUM_BALANCE = _whole(
        0, help_text=_("Spendable points a member needs before redeeming at all.")
    )
    REDEEM_MAX_SHARE = forms.DecimalField(
        min_value=0,
        max_value=100,
        max_digits=5,
        decimal_places=2,
        help_text=_(
            "Percentage of the basket (after other discounts, shipping "
            "excluded) points may pay for."
        ),
    )
    REDEEM_STEP = _whole(
        1, help_text=_("Points are applied in multiples of this (also the least).")
    )
    HOLD_TIMEOUT_MINUTES = _whole(
        1,
        24 * 60,
        help_text=_("Points applied to a basket go back if no order uses them."),
    )
    EXPIRY_MONTHS = _whole(
        1,
        120,
        help_text=_(
            "Confirmed points expire this many months after confirmation. "
            "Applies to points confirmed from now on; points already confirmed "
            "keep their date."
        ),
    )
    EXPIRY_ROUNDING = forms.ChoiceField(
        choices=[
            ("none", _("Not rounded")),
            ("month_end", _("End of the month")),
            ("year_end", _("End of the year")),
        ]
    )
    REMINDER_DAYS = forms.CharField(
        required=False,
        max_length=100,
        help_text=_(
            "Days before points expire when members who agreed are reminded, "
            "separated by commas, such as 30, 15, 7. Empty: no reminders."
        ),
    )
    TIER_BASIS = forms.ChoiceField(
        choices=[
            ("spend", _("Money spent")),
            ("points", _("Points earned from orders")),
            ("orders", _("Number of orders")),
        ],
        help_text=_(
            "Tier thresholds are in this unit: change them on the tiers page "
            "when you change it. The next tier review uses it."
        ),
    )
    TIER_WINDOW = forms.ChoiceField(
        choices=[
            ("rolling", _("A rolling period")),
            ("calendar_year", _("The calendar year")),
        ]
    )
    TIER_WINDOW_MONTHS = _whole(1, 60)
    TIER_GRACE_DAYS = _whole(
        0,
        365,
        help_text=_("A member found below their tier keeps it this long (0: none)."),
    )
    BIRTHDAY_DAYS_AHEAD = _whole(0, 60)

    def __init__(self, *args, **kwargs):
        kwargs["initial"] = {**self.values_in_force(), **(kwargs.get("initial") or {})}
        super().__init__(*args, **kwargs)
        statuses = [(status, status) for status in order_statuses()]
        for name in STATUS_LISTS:
            self.fields[name].choices = statuses
        for name, field in self.fields.items():
            field.label = SETTING_LABELS[name]
            # What the page showed travels with it, so only what this owner
            # changed is saved, not a colleague's change made meanwhile.
            field.show_hidden_initial = True

    @staticmethod
    def to_field(name, value):
        if name in PERCENT:
            return Decimal(str(value)) * 100
        if name in DECIMALS:
            return Decimal(str(value))
        if name == "REMINDER_DAYS":
            return ", ".join(str(day) for day in value)
        if name in STATUS_LISTS:
            return list(value)
        if name == "PROGRAMME_NAME":
            return str(value)
        return value

    @classmethod
    def values_in_force(cls):
        return {
            name: cls.to_field(name, getattr(loyalty_settings, name))
            for name in EDITABLE
        }

    def _clean_fields(self):
        """A field the owner left as it was keeps the value in force, even one the
        form's bounds would refuse (a shop's Django setting may be outside them):
        only what the owner changed is checked and saved."""
        super()._clean_fields()
        for name in list(self._errors):
            if name in self.fields and name not in self.changed_data:
                del self._errors[name]

    def clean_REMINDER_DAYS(self):
        text = self.cleaned_data["REMINDER_DAYS"].strip()
        if not text:
            return []
        days = []
        for part in text.replace("，", ",").split(","):
            part = part.strip()
            if not part:
                continue
            if not part.isdigit() or int(part) < 1 or int(part) > 365:
                raise forms.ValidationError(
                    _(
                        "Write whole numbers of days from 1 to 365 separated by "
                        "commas, such as 30, 15, 7."
                    )
                )
            days.append(int(part))
        return sorted(set(days), reverse=True)

    def clean_PROGRAMME_NAME(self):
        name = self.cleaned_data["PROGRAMME_NAME"].strip()
        if not name:
            raise forms.ValidationError(_("The programme needs a name."))
        return name

    def clean(self):
        cleaned = super().clean()
        if self.errors:
            return cleaned
        proposed = Proposed(self.setting_values())
        both = set(proposed.CONFIRM_STATUSES) & set(proposed.REVERSE_STATUSES)
        if both:
            self.add_error(
                "REVERSE_STATUSES",
                _("%(statuses)s cannot both confirm and take back points.")
                % {"statuses": ", ".join(sorted(both))},
            )
        point_value = Decimal(proposed.REDEEM_POINT_VALUE)
        step_value = point_value * proposed.REDEEM_STEP
        if step_value != step_value.quantize(Decimal("0.01")):
            self.add_error(
                "REDEEM_STEP",
                _(
                    "%(step)s points at %(value)s each are worth %(worth)s, not a "
                    "whole number of cents: shoppers would lose a fraction of a "
                    "cent each time. Choose a step and a value whose product has "
                    "at most two decimals, such as 100 points at 0.01."
                )
                % {
                    "step": proposed.REDEEM_STEP,
                    "value": decimal_text(point_value),
                    "worth": decimal_text(step_value),
                },
            )
        if not self.errors:
            # The system check's rules as well, so the dashboard can never store
            # a policy the shop's own settings would be refused for.
            for error in checks.policy_errors(proposed):
                self.add_error(None, error.msg)
        return cleaned

    def setting_values(self):
        """{name: value as stored} of every field (the value in force for the
        fields the owner left as they were)."""
        values = {}
        for name in EDITABLE:
            if name not in self.changed_data:
                values[name] = canonical(name, getattr(loyalty_settings, name))
                continue
            value = self.cleaned_data[name]
            if name in PERCENT:
                value = value / 100
            values[name] = canonical(name, value)
        return values


def _log(user, row, flag, message):
    LogEntry.objects.log_actions(
        user.pk, [row], flag, change_message=message, single_object=True
    )


def _describe(name, before, after):
    return (
        f"{SETTING_LABELS_EN[name]} ({PREFIX}{name}): "
        f"{shown(name, before)} → {shown(name, after)}"
    )


def stored(value):
    """What the value column is given: None as JSON's null (a row with SQL NULL
    could not be told from a missing one), anything else as it is."""
    return Value(None, JSONField()) if value is None else value


def save_settings(user, values, names):
    """Apply ``values`` ({name: stored value}) for ``names`` as ``user``: store
    what differs from the shop's Django setting, remove what equals it, audit
    each change. Returns the names whose value in force changed."""
    changed = []
    with transaction.atomic():
        rows = {
            row.name: row
            for row in ProgrammeSetting.objects.select_for_update().filter(
                name__in=names
            )
        }
        for name in names:
            row = rows.get(name)
            site = canonical(name, getattr(site_settings, name))
            before = canonical(name, decode(name, row.value)) if row else site
            after = values[name]
            if after == before:
                continue
            changed.append(name)
            message = _describe(name, before, after)
            if after == site:
                _log(user, row, DELETION, f"Set back to the shop's setting: {message}")
                row.delete()
            elif row is None:
                row = ProgrammeSetting.objects.create(
                    name=name, value=stored(after), changed_by=user
                )
                _log(user, row, ADDITION, f"Changed {message}")
            else:
                row.value, row.changed_by = stored(after), user
                row.save(update_fields=["value", "changed_by", "changed_at"])
                _log(user, row, CHANGE, f"Changed {message}")
    return changed


def set_back(user, names):
    """Return ``names`` to the shop's Django settings (audited)."""
    values = {name: canonical(name, getattr(site_settings, name)) for name in names}
    return save_settings(user, values, names)


def overridden():
    """{name: row} of the settings the dashboard changed."""
    return {
        row.name: row
        for row in ProgrammeSetting.objects.filter(name__in=EDITABLE).select_related(
            "changed_by"
        )
    }
