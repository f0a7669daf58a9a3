"""The owner's loyalty screens in Oscar's dashboard.

Who may open which screen is declared once, in ``LoyaltyDashboardConfig``'s
``permissions_map``: Oscar wraps each URL with its permission check and hides menu
entries a user cannot open. The views only read, except the adjustment, which writes
through :func:`oscar_loyalty.services.ledger.adjust` like every other ledger change,
setting a member's tier (through :func:`oscar_loyalty.services.tiers.set_tier`), and
saving earn rules and tiers (recorded in Django's admin log).
"""

import logging
from datetime import datetime, time, timedelta
from decimal import Decimal

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.core import checks
from django.core.paginator import Paginator
from django.db import IntegrityError, connection, transaction
from django.db.models import Count, F, Q, Sum
from django.db.models.functions import Coalesce
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.generic import (
    CreateView,
    DetailView,
    ListView,
    TemplateView,
    UpdateView,
)

from ..checks import TAG
from ..conf import loyalty_settings
from ..exceptions import (
    InsufficientPoints,
    LoyaltyError,
    TierProtectionInPast,
    TierReasonRequired,
)
from ..models import EarnRule, Entry, Lot, Member, Posting, Tier, TierChange
from ..redemption import points_offer
from ..services import ledger, tiers
from .forms import (
    BASIS_LABELS,
    AdjustmentForm,
    EarnRuleForm,
    MemberSearchForm,
    SetTierForm,
    TierForm,
    threshold_label,
)

logger = logging.getLogger("oscar_loyalty")

#: Human names for the settings on the overview; a setting missing here is shown
#: by its name alone.
SETTING_LABELS = {
    "PROGRAMME_NAME": gettext_lazy("Programme name"),
    "EXPIRY_MONTHS": gettext_lazy("Points expire after (months)"),
    "EXPIRY_ROUNDING": gettext_lazy("Expiry rounded up to"),
    "HOLD_TIMEOUT_MINUTES": gettext_lazy(
        "Points applied to a basket are released after (minutes)"
    ),
    "EARN_RATE": gettext_lazy("Points per unit of currency"),
    "EARN_ROUNDING": gettext_lazy("Rounding of points per order line"),
    "EARN_INCLUDES_TAX": gettext_lazy("Tax earns points"),
    "EARN_MINIMUM_ORDER": gettext_lazy("Smallest order that earns points"),
    "CONFIRM_STATUSES": gettext_lazy("Order statuses that confirm points"),
    "REVERSE_STATUSES": gettext_lazy("Order statuses that take points back"),
    "REFUND_EVENT_CODES": gettext_lazy("Payment events that take points back"),
    "CONFIRM_AFTER_DAYS": gettext_lazy("Points confirmed after (days)"),
    "REMINDER_DAYS": gettext_lazy("Expiry reminders (days before)"),
    "REDEEM_POINT_VALUE": gettext_lazy("Value of one point"),
    "REDEEM_MINIMUM_BALANCE": gettext_lazy("Points needed before redeeming"),
    "REDEEM_MAX_SHARE": gettext_lazy("Largest share of a basket paid with points"),
    "REDEEM_STEP": gettext_lazy("Points are applied in steps of"),
}


def setting_display(value):
    """A setting's value as an owner reads it: lists joined, yes/no, a dash for none."""
    if value is None or value in ((), []):
        return "—"
    if isinstance(value, bool):
        return _("Yes") if value else _("No")
    if isinstance(value, (list, tuple)):
        return ", ".join(str(item) for item in value)
    return str(value)


def point_value():
    """The money one point takes off at checkout (``REDEEM_POINT_VALUE``)."""
    return Decimal(str(loyalty_settings.REDEEM_POINT_VALUE))


class ProgrammeOverviewView(TemplateView):
    """What the programme runs on: settings in force and installation problems."""

    template_name = "oscar_loyalty/dashboard/overview.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        check_messages = checks.run_checks(tags=[TAG])
        prefix_length = len("OSCAR_LOYALTY_")
        context.update(
            programme_name=loyalty_settings.PROGRAMME_NAME,
            programme_settings=[
                (
                    name,
                    SETTING_LABELS.get(name[prefix_length:], ""),
                    setting_display(value),
                )
                for name, value in loyalty_settings.as_dict().items()
            ],
            check_messages=check_messages,
            points_offer=points_offer(),
            database_vendor=connection.vendor,
            tasks_run_eagerly=getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False),
        )
        return context


# Members ---------------------------------------------------------------------------


class MemberListView(ListView):
    """Members, newest first, found by member number, e-mail or name.

    One query for the page (the customer and the tier come by join) and one for the
    count.
    """

    template_name = "oscar_loyalty/dashboard/member_list.html"
    context_object_name = "members"
    paginate_by = 25

    def get_queryset(self):
        self.form = MemberSearchForm(self.request.GET)
        members = Member.objects.select_related("user", "tier").order_by("-pk")
        return self.form.filter(members)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(form=self.form, query=self.form.cleaned_data.get("q", ""))
        return context


class MemberDetailView(DetailView):
    """A member's balances, the points that expire next and their ledger history.

    The history is paginated over postings; each posting's change to the available
    and pending points is summed from its entries for the page's postings only.
    """

    template_name = "oscar_loyalty/dashboard/member_detail.html"
    context_object_name = "member"
    history_per_page = 25
    expiring_lots_shown = 10
    tier_changes_shown = 20

    def get_queryset(self):
        return Member.objects.select_related("user", "tier")

    def can_adjust(self):
        return self.request.user.has_perm("oscar_loyalty.adjust_points")

    def can_set_tier(self):
        return self.request.user.has_perm("oscar_loyalty.set_tier")

    def get_tier_context(self):
        """The member's tier, what they qualify with and their last tier changes
        (newest first, one query with both tiers joined)."""
        member = self.object
        return {
            "tier_value": tiers.qualifying_value(member),
            "tier_history": list(
                TierChange.objects.filter(member=member)
                .select_related("from_tier", "to_tier")
                .order_by("-created_at", "-id")[: self.tier_changes_shown]
            ),
            **programme_basis(),
        }

    def get_history_page(self):
        postings = Posting.objects.filter(member=self.object).order_by(
            "-created_at", "-id"
        )
        page = Paginator(postings, self.history_per_page).get_page(
            self.request.GET.get("page")
        )
        changes = {
            row["posting_id"]: row
            for row in Entry.objects.filter(posting__in=[p.pk for p in page])
            .values("posting_id")
            .annotate(
                available=Coalesce(Sum("available_change"), 0),
                pending=Coalesce(Sum("pending_change"), 0),
            )
            .order_by()
        }
        for posting in page:
            row = changes.get(posting.pk, {})
            posting.available_change = row.get("available", 0)
            posting.pending_change = row.get("pending", 0)
        return page

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        page = self.get_history_page()
        soon = timezone.now() + timedelta(days=30)
        expiring_lots = list(
            Lot.objects.filter(
                member=self.object, status=Lot.Status.ACTIVE, remaining__gt=0
            ).order_by("expires_at", "id")[: self.expiring_lots_shown]
        )
        for lot in expiring_lots:
            lot.expires_soon = lot.expires_at <= soon
        context.update(
            history=page.object_list,
            page_obj=page,
            paginator=page.paginator,
            is_paginated=page.has_other_pages(),
            expiring_lots=expiring_lots,
            can_adjust=self.can_adjust(),
            can_set_tier=self.can_set_tier(),
            **self.get_tier_context(),
        )
        if context["can_adjust"]:
            context.setdefault("adjustment_form", AdjustmentForm())
        if context["can_set_tier"]:
            context.setdefault("tier_form", self.initial_tier_form())
        return context

    def initial_tier_form(self):
        member = self.object
        protected = member.tier_protected_until
        return SetTierForm(
            initial={
                "tier": member.tier_id,
                "protect_until": (
                    timezone.localtime(protected).date()
                    if protected and protected > timezone.now()
                    else None
                ),
            }
        )


class MemberAdjustView(MemberDetailView):
    """POST: add or take away a member's points, with a reason and the staff user.

    The form's hidden key becomes the posting's idempotency key, so submitting the
    same form twice writes once. Anything refused is shown on the form and nothing
    is written.
    """

    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        self.object = member = self.get_object()
        form = AdjustmentForm(request.POST)
        if form.is_valid():
            key = form.posting_key
            points = form.cleaned_data["points"]
            already_written = Posting.objects.filter(key=key).exists()
            try:
                ledger.adjust(
                    member=member,
                    points=points,
                    reason=form.cleaned_data["reason"],
                    actor=ledger.Actor.from_user(request.user),
                    key=key,
                )
            except InsufficientPoints as error:
                form.add_error(
                    "points",
                    _(
                        "This member has %(spendable)s points to spend: you can "
                        "take away at most that many."
                    )
                    % {"spendable": error.params.get("spendable", 0)},
                )
            except LoyaltyError as error:
                form.add_error(None, str(error))
            else:
                self.report(member, points, already_written)
                return redirect(
                    reverse(
                        "loyalty_dashboard:loyalty-member-detail",
                        kwargs={"pk": member.pk},
                    )
                )
        return self.render_to_response(self.get_context_data(adjustment_form=form))

    def report(self, member, points, already_written):
        if already_written:
            messages.info(
                self.request,
                _("This adjustment was already recorded; nothing was changed."),
            )
            return
        logger.info(
            "Staff user %s adjusted member %s by %s points",
            self.request.user.pk,
            member.number,
            points,
        )
        if points > 0:
            message = _("Added %(points)s points to member %(number)s.")
        else:
            message = _("Took %(points)s points away from member %(number)s.")
        messages.success(
            self.request, message % {"points": abs(points), "number": member.number}
        )


def end_of_day(day):
    """The last moment of ``day`` in the shop's time zone, as an aware datetime."""
    return timezone.make_aware(
        datetime.combine(day, time.max), timezone.get_default_timezone()
    )


class MemberSetTierView(MemberDetailView):
    """POST: staff put a member in a tier (or none), with a required reason.

    Writes through :func:`oscar_loyalty.services.tiers.set_tier`, whose
    :class:`TierChange` row (reason, staff user, protection) is the record of it.
    Anything refused is shown on the form and nothing is written.
    """

    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        self.object = member = self.get_object()
        form = SetTierForm(request.POST)
        if form.is_valid():
            tier = form.cleaned_data["tier"]
            day = form.cleaned_data["protect_until"]
            try:
                tiers.set_tier(
                    member=member,
                    tier=tier,
                    reason=form.cleaned_data["reason"],
                    actor=ledger.Actor.from_user(request.user),
                    protect_until=end_of_day(day) if day else None,
                )
            except TierReasonRequired as error:
                form.add_error("reason", str(error))
            except TierProtectionInPast as error:
                form.add_error("protect_until", str(error))
            except LoyaltyError as error:
                form.add_error(None, str(error))
            else:
                self.report(member, tier)
                return redirect(
                    reverse(
                        "loyalty_dashboard:loyalty-member-detail",
                        kwargs={"pk": member.pk},
                    )
                )
        return self.render_to_response(self.get_context_data(tier_form=form))

    def report(self, member, tier):
        logger.info(
            "Staff user %s set the tier of member %s to %s",
            self.request.user.pk,
            member.number,
            tier.code if tier else None,
        )
        if tier is None:
            message = _("Member %(number)s now has no tier.")
        else:
            message = _("Member %(number)s is now in %(tier)s.")
        messages.success(
            self.request,
            message % {"number": member.number, "tier": tier.name if tier else ""},
        )


# Programme figures -----------------------------------------------------------------


class LiabilityView(TemplateView):
    """What the points members hold are worth, and how much expires soon.

    Two aggregate queries, however many members: balances from the cached member
    totals, expiry from the active lots (through the partial index on expiring lots).
    """

    template_name = "oscar_loyalty/dashboard/liability.html"
    windows = (30, 60, 90)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        # Aliases differ from the field names, which the filters below refer to.
        sums = Member.objects.aggregate(
            available_sum=Coalesce(Sum("available"), 0),
            pending_sum=Coalesce(Sum("pending"), 0),
            held_sum=Coalesce(Sum("held"), 0),
            members=Count("pk"),
            with_available=Count("pk", filter=Q(available__gt=0)),
            with_pending=Count("pk", filter=Q(pending__gt=0)),
        )
        totals = {
            "available": sums["available_sum"],
            "pending": sums["pending_sum"],
            "held": sums["held_sum"],
            "members": sums["members"],
            "with_available": sums["with_available"],
            "with_pending": sums["with_pending"],
        }
        now = timezone.now()
        bounds = {days: now + timedelta(days=days) for days in self.windows}
        aggregates = {
            "overdue_points": Coalesce(
                Sum("remaining", filter=Q(expires_at__lte=now)), 0
            ),
            "overdue_members": Count(
                "member", distinct=True, filter=Q(expires_at__lte=now)
            ),
        }
        for days, bound in bounds.items():
            aggregates[f"points_{days}"] = Coalesce(
                Sum("remaining", filter=Q(expires_at__lte=bound)), 0
            )
            aggregates[f"members_{days}"] = Count(
                "member", distinct=True, filter=Q(expires_at__lte=bound)
            )
        expiring = Lot.objects.filter(
            status=Lot.Status.ACTIVE,
            remaining__gt=0,
            expires_at__lte=bounds[max(self.windows)],
        ).aggregate(**aggregates)
        value = point_value()
        context.update(
            currency=settings.OSCAR_DEFAULT_CURRENCY,
            point_value=value,
            totals=totals,
            liability=totals["available"] * value,
            pending_value=totals["pending"] * value,
            held_value=totals["held"] * value,
            exposure_value=(totals["available"] + totals["pending"]) * value,
            overdue={
                "points": expiring["overdue_points"],
                "members": expiring["overdue_members"],
                "value": expiring["overdue_points"] * value,
            },
            expiry_windows=[
                {
                    "days": days,
                    "until": bounds[days],
                    "points": expiring[f"points_{days}"],
                    "members": expiring[f"members_{days}"],
                    "value": expiring[f"points_{days}"] * value,
                }
                for days in self.windows
            ],
            now=now,
        )
        return context


# Earn rules ------------------------------------------------------------------------


def rule_state(rule, now):
    """Whether a rule applies now, as a word for the list."""
    if not rule.is_active:
        return _("Inactive")
    if rule.starts_at and rule.starts_at > now:
        return _("Scheduled")
    if rule.ends_at and rule.ends_at <= now:
        return _("Ended")
    return _("Running")


class EarnRuleListView(ListView):
    """Earn rules, active ones first. Rules are deactivated, never deleted: lots
    record which rule and version earned them."""

    template_name = "oscar_loyalty/dashboard/earnrule_list.html"
    context_object_name = "rules"
    paginate_by = 50

    def get_queryset(self):
        return EarnRule.objects.select_related("range").order_by(
            "-is_active", "-multiplier", "id"
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        now = timezone.now()
        for rule in context["rules"]:
            rule.state = rule_state(rule, now)
        context["can_add"] = self.request.user.has_perm("oscar_loyalty.add_earnrule")
        context["can_change"] = self.request.user.has_perm(
            "oscar_loyalty.change_earnrule"
        )
        return context


def audit(request, obj, flag, message):
    """Record a staff change in Django's admin log (who, what, when), beside the
    application log: owners see it in the Django admin's "Recent actions"."""
    LogEntry.objects.log_actions(
        request.user.pk,
        [obj],
        flag,
        change_message=message,
        single_object=True,
    )


class EarnRuleCreateView(CreateView):
    model = EarnRule
    form_class = EarnRuleForm
    template_name = "oscar_loyalty/dashboard/earnrule_form.html"

    def get_success_url(self):
        return reverse("loyalty_dashboard:loyalty-earnrule-list")

    def form_valid(self, form):
        response = super().form_valid(form)
        logger.info(
            "Staff user %s created earn rule %s", self.request.user.pk, self.object.pk
        )
        audit(self.request, self.object, ADDITION, "Created earn rule (version 1)")
        messages.success(
            self.request,
            _("Earn rule “%(name)s” created.") % {"name": self.object.name},
        )
        return response


class EarnRuleUpdateView(UpdateView):
    """Every save is a new version of the rule.

    Lots store the rule and the version that earned them, so the version goes up by
    one in the database (``F("version") + 1``: two staff saving at once count two).
    """

    model = EarnRule
    form_class = EarnRuleForm
    template_name = "oscar_loyalty/dashboard/earnrule_form.html"
    context_object_name = "rule"

    def get_success_url(self):
        return reverse("loyalty_dashboard:loyalty-earnrule-list")

    def form_valid(self, form):
        rule = form.save(commit=False)
        rule.version = F("version") + 1
        rule.save()
        rule.refresh_from_db()
        self.object = rule
        logger.info(
            "Staff user %s changed earn rule %s (now version %s)",
            self.request.user.pk,
            rule.pk,
            rule.version,
        )
        audit(
            self.request,
            rule,
            CHANGE,
            f"Changed {', '.join(form.changed_data) or 'nothing'}; "
            f"now version {rule.version}",
        )
        messages.success(
            self.request,
            _("Earn rule “%(name)s” saved as version %(version)s.")
            % {"name": rule.name, "version": rule.version},
        )
        return redirect(self.get_success_url())


# Tiers -----------------------------------------------------------------------------


def programme_basis():
    """How the programme qualifies members for tiers, for the screens to show."""
    basis = loyalty_settings.TIER_BASIS
    if loyalty_settings.TIER_WINDOW == "calendar_year":
        window = _("The current calendar year")
    else:
        window = _("The last %(months)s months (rolling)") % {
            "months": loyalty_settings.TIER_WINDOW_MONTHS
        }
    return {
        "tier_basis": basis,
        "tier_basis_label": BASIS_LABELS.get(basis, basis),
        "tier_window_label": window,
        "tier_grace_days": loyalty_settings.TIER_GRACE_DAYS,
        "threshold_label": threshold_label(basis),
    }


class TierListView(ListView):
    """Tiers by rank with how many members each holds: two queries, the tiers and
    one count of members grouped by tier, whatever the number of tiers."""

    template_name = "oscar_loyalty/dashboard/tier_list.html"
    context_object_name = "tiers"

    def get_queryset(self):
        return Tier.objects.order_by("rank")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        counts = dict(
            Member.objects.values("tier_id")
            .annotate(members=Count("pk"))
            .order_by()
            .values_list("tier_id", "members")
        )
        for tier in context["tiers"]:
            tier.member_count = counts.get(tier.pk, 0)
        context.update(
            members_without_tier=counts.get(None, 0),
            can_add=self.request.user.has_perm("oscar_loyalty.add_tier"),
            can_change=self.request.user.has_perm("oscar_loyalty.change_tier"),
            **programme_basis(),
        )
        return context


#: Tier fields in the order the admin log lists them.
TIER_AUDIT_FIELDS = TierForm.Meta.fields


def tier_audit_value(value):
    return "—" if value in (None, "") else str(value)


class TierFormMixin:
    """Saving a tier, shared by create and edit.

    The form checks rank and thresholds against the other tiers; the database's
    unique rank and code still guard two staff saving at once, and such a clash is
    shown on the form instead of an error page. Saving is all: the ``post_save``
    receiver makes the tier's group and re-syncs members' groups on commit.
    """

    model = Tier
    form_class = TierForm
    template_name = "oscar_loyalty/dashboard/tier_form.html"

    def get_success_url(self):
        return reverse("loyalty_dashboard:loyalty-tier-list")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(programme_basis())
        return context

    def save_tier(self, form):
        """The saved tier, or None with the clash added to the form."""
        try:
            with transaction.atomic():
                tier = form.save()
        except IntegrityError:
            form.add_error(
                None,
                _(
                    "Another tier was saved with this rank or code meanwhile: "
                    "check the list of tiers and try again."
                ),
            )
            return None
        tier.refresh_from_db()
        return tier


class TierCreateView(TierFormMixin, CreateView):
    def form_valid(self, form):
        tier = self.save_tier(form)
        if tier is None:
            return self.form_invalid(form)
        self.object = tier
        logger.info("Staff user %s created tier %s", self.request.user.pk, tier.code)
        audit(
            self.request,
            tier,
            ADDITION,
            "Created tier: "
            + "; ".join(
                f"{name}: {tier_audit_value(getattr(tier, name))}"
                for name in TIER_AUDIT_FIELDS
            ),
        )
        messages.success(
            self.request, _("Tier “%(name)s” created.") % {"name": tier.name}
        )
        return redirect(self.get_success_url())


class TierUpdateView(TierFormMixin, UpdateView):
    """Edit a tier; the admin log records each changed field, before → after."""

    context_object_name = "tier"

    def form_valid(self, form):
        before = {name: form.initial.get(name) for name in TIER_AUDIT_FIELDS}
        tier = self.save_tier(form)
        if tier is None:
            return self.form_invalid(form)
        self.object = tier
        changes = [
            f"{name}: {tier_audit_value(before[name])} → "
            f"{tier_audit_value(getattr(tier, name))}"
            for name in TIER_AUDIT_FIELDS
            if name in form.changed_data
        ]
        logger.info(
            "Staff user %s changed tier %s (%s)",
            self.request.user.pk,
            tier.code,
            ", ".join(form.changed_data) or "nothing",
        )
        audit(
            self.request,
            tier,
            CHANGE,
            "Changed " + ("; ".join(changes) if changes else "nothing"),
        )
        messages.success(
            self.request, _("Tier “%(name)s” saved.") % {"name": tier.name}
        )
        return redirect(self.get_success_url())
