"""The owner's loyalty screens in Oscar's dashboard.

Who may open which screen is declared once, in ``LoyaltyDashboardConfig``'s
``permissions_map``: Oscar wraps each URL with its permission check and hides menu
entries a user cannot open. The views only read, except the adjustment, which writes
through :func:`oscar_loyalty.services.ledger.adjust` like every other ledger change,
setting a member's tier (through :func:`oscar_loyalty.services.tiers.set_tier`),
issuing coupons (through :mod:`oscar_loyalty.services.coupons`), and saving earn
rules, tiers, coupon designs, rewards, campaigns (whose receivers keep their Oscar
offers in step) and action rewards; staff changes are recorded in Django's admin
log.
"""

import logging
from datetime import datetime, time, timedelta
from decimal import Decimal
from functools import partial

from django.conf import settings
from django.contrib import messages
from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.contenttypes.models import ContentType
from django.core import checks
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import IntegrityError, connection, transaction
from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    Model,
    OuterRef,
    Prefetch,
    Q,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect
from django.template.defaultfilters import floatformat
from django.urls import reverse
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.generic import (
    CreateView,
    DetailView,
    FormView,
    ListView,
    TemplateView,
    UpdateView,
    View,
)
from oscar.core.loading import get_model
from oscar.templatetags.currency_filters import currency

from .. import analytics, charts, consent, exports, scoring, tasks, winback
from ..campaigns import report as campaign_report
from ..checks import TAG
from ..conf import loyalty_settings
from ..exceptions import (
    CouponReasonRequired,
    InsufficientPoints,
    LoyaltyError,
    TierProtectionInPast,
    TierReasonRequired,
)
from ..models import (
    ACTIVITY_SEGMENTS,
    ActionRule,
    Campaign,
    CampaignStep,
    CouponDesign,
    EarnRule,
    Entry,
    ExportRecord,
    Lot,
    Member,
    MemberCoupon,
    MemberNote,
    OrderActivity,
    Posting,
    Referral,
    Reward,
    RewardRedemption,
    ScoringRun,
    Tier,
    TierChange,
    WinBack,
    WinBackRule,
)
from ..redemption import points_offer
from ..services import coupons, ledger, tiers
from . import programme
from .forms import (
    BASIS_LABELS,
    ActionRuleForm,
    AdjustmentForm,
    AnalyticsPeriodForm,
    AuditLogSearchForm,
    CampaignForm,
    CampaignStepFormSet,
    CouponDesignForm,
    CouponSearchForm,
    EarnRuleForm,
    IssueCouponForm,
    LedgerSearchForm,
    MemberConsentForm,
    MemberNoteForm,
    MemberSearchForm,
    ReferralSearchForm,
    RewardForm,
    SetTierForm,
    TierForm,
    WinBackRuleForm,
    threshold_label,
)
from .programme import SETTING_LABELS

VoucherApplication = get_model("voucher", "VoucherApplication")
Order = get_model("order", "Order")

logger = logging.getLogger("oscar_loyalty")


def point_value():
    """The money one point takes off at checkout (``REDEEM_POINT_VALUE``)."""
    return Decimal(str(loyalty_settings.REDEEM_POINT_VALUE))


# Downloads -------------------------------------------------------------------------


class ExportMixin:
    """``?format=csv`` or ``?format=xlsx`` on a list downloads the whole filtered
    list (not one page) for staff with ``oscar_loyalty.export_data``, on record
    (:mod:`oscar_loyalty.exports`). A view names its ``export_kind`` and gives
    ``export_header()`` and ``export_rows(queryset)`` (a generator: rows are
    written as they are read, in chunks, without a query per row); the filters
    recorded are its search form's (``self.form``) unless ``export_filters()``
    says otherwise."""

    export_kind = None

    def get(self, request, *args, **kwargs):
        file_format = request.GET.get("format")
        if file_format in ExportRecord.Format.values:
            if not request.user.has_perm("oscar_loyalty.export_data"):
                raise PermissionDenied
            queryset = self.get_export_queryset()
            return exports.export(
                request,
                kind=self.export_kind,
                file_format=file_format,
                header=[str(title) for title in self.export_header()],
                rows=self.export_rows(queryset),
                count=queryset.count(),
                filters=self.export_filters(),
            )
        return super().get(request, *args, **kwargs)

    def export_filters(self):
        return exports.filters_of(self.form)

    def get_export_queryset(self):
        return self.get_queryset()

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        query = self.request.GET.copy()
        query.pop("page", None)
        query.pop("format", None)
        context.update(
            can_export=self.request.user.has_perm("oscar_loyalty.export_data"),
            export_query=query.urlencode(),
        )
        return context


class ProgrammeOverviewView(TemplateView):
    """What the programme runs on: settings in force and installation problems."""

    template_name = "oscar_loyalty/dashboard/overview.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        check_messages = checks.run_checks(tags=[TAG])
        prefix_length = len("OSCAR_LOYALTY_")
        changed = programme.overridden()
        context.update(
            programme_name=loyalty_settings.PROGRAMME_NAME,
            programme_settings=[
                (
                    name,
                    SETTING_LABELS.get(name[prefix_length:], ""),
                    programme.shown(name[prefix_length:], value, translated=True),
                    changed.get(name[prefix_length:]),
                )
                for name, value in loyalty_settings.as_dict().items()
            ],
            can_change_settings=self.request.user.has_perm(
                "oscar_loyalty.change_programmesetting"
            ),
            check_messages=check_messages,
            points_offer=points_offer(),
            database_vendor=connection.vendor,
            tasks_run_eagerly=getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False),
        )
        return context


class ProgrammeSettingsView(FormView):
    """The owner changes the programme's policy (earning, pending points, paying
    with points, expiry, tiers, birthdays); each change is audited. Only the
    fields changed on the form are written, so two owners editing at once keep
    each other's changes; "Set back" returns one setting to the shop's Django
    setting."""

    template_name = "oscar_loyalty/dashboard/settings_form.html"
    form_class = programme.ProgrammeSettingsForm

    def post(self, request, *args, **kwargs):
        name = request.POST.get("set_back")
        if name is not None:
            if name not in programme.EDITABLE:
                messages.error(request, _("There is no such setting."))
            elif programme.set_back(request.user, [name]):
                messages.success(
                    request,
                    _("“%(setting)s” is back to the shop's setting.")
                    % {"setting": programme.SETTING_LABELS[name]},
                )
            return redirect("loyalty_dashboard:loyalty-settings")
        return super().post(request, *args, **kwargs)

    def form_valid(self, form):
        names = [name for name in form.changed_data if name in programme.EDITABLE]
        try:
            changed = programme.save_settings(
                self.request.user, form.setting_values(), names
            )
        except IntegrityError:
            messages.error(
                self.request,
                _(
                    "Someone else saved the settings at the same moment. Check "
                    "the values below and save again."
                ),
            )
            return redirect("loyalty_dashboard:loyalty-settings")
        logger.info(
            "Staff user %s changed programme settings %s", self.request.user.pk, changed
        )
        if changed:
            messages.success(
                self.request,
                _("Saved: %(settings)s.")
                % {
                    "settings": ", ".join(
                        str(programme.SETTING_LABELS[name]) for name in changed
                    )
                },
            )
        else:
            messages.info(self.request, _("Nothing was changed."))
        return redirect("loyalty_dashboard:loyalty-settings")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        form = context["form"]
        changed = programme.overridden()
        context["sections"] = [
            (
                title,
                [
                    (
                        form[name],
                        changed.get(name),
                        programme.shown(
                            name,
                            getattr(programme.site_settings, name),
                            translated=True,
                        ),
                    )
                    for name in names
                ],
            )
            for title, names in programme.SECTIONS
        ]
        return context


# Members ---------------------------------------------------------------------------


class MemberListView(ExportMixin, ListView):
    """Members, newest first, found by member number, e-mail or name, and tier;
    downloadable.

    One query for the page (the customer and the tier come by join) and one for the
    count.
    """

    template_name = "oscar_loyalty/dashboard/member_list.html"
    context_object_name = "members"
    paginate_by = 25
    export_kind = ExportRecord.Kind.MEMBERS

    def export_header(self):
        return [
            _("Member number"),
            _("E-mail"),
            _("First name"),
            _("Last name"),
            _("Tier"),
            _("Points to spend"),
            _("Pending points"),
            _("Held at checkout"),
            _("Points earned in total"),
            _("Joined"),
            _("Phone"),
            _("Language"),
            *(purpose.label for purpose in consent.Purpose),
            _("Activity segment"),
            _("Value segment"),
            _("RFM segment"),
            _("Churn risk"),
            _("Segments as of"),
        ]

    def export_rows(self, members):
        batch = []
        for member in members.iterator(chunk_size=2000):
            batch.append(member)
            if len(batch) == 2000:
                yield from self.export_batch(batch)
                batch = []
        yield from self.export_batch(batch)

    def export_batch(self, members):
        """Rows for a batch of members, with their segments (one query)."""
        for member in scoring.attach_scores(members, getattr(self.form, "run", None)):
            user = member.user
            score = member.score
            yield [
                member.number,
                user.email,
                user.first_name,
                user.last_name,
                member.tier.name if member.tier_id else "",
                member.available,
                member.pending,
                member.held,
                member.lifetime_earned,
                member.joined_at,
                member.phone,
                member.language,
                *(
                    _("Yes") if consent.has_consent(member, purpose) else _("No")
                    for purpose in consent.Purpose
                ),
                *(
                    (
                        score.get_activity_segment_display(),
                        score.get_value_segment_display(),
                        score.get_rfm_segment_display(),
                        score.churn_risk,
                        score.scored_at,
                    )
                    if score
                    else ("", "", "", "", "")
                ),
            ]

    def get_queryset(self):
        self.form = MemberSearchForm(self.request.GET)
        members = Member.objects.select_related("user", "tier").order_by("-pk")
        return self.form.filter(members)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["members"] = context["object_list"] = scoring.attach_scores(
            list(context["members"]), getattr(self.form, "run", None)
        )
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
    coupons_shown = 20
    referrals_shown = 10
    orders_shown = 10
    notes_shown = 20
    consents_shown = 20

    def get_queryset(self):
        return Member.objects.select_related("user", "tier")

    def can_adjust(self):
        return self.request.user.has_perm("oscar_loyalty.adjust_points")

    def can_set_tier(self):
        return self.request.user.has_perm("oscar_loyalty.set_tier")

    def can_issue_coupon(self):
        return self.request.user.has_perm("oscar_loyalty.issue_coupon")

    def get_coupon_context(self):
        """The member's newest coupons with their state, in one query (design and
        voucher by join); one more is read only to know whether there are more."""
        now = timezone.now()
        member_coupons = list(
            MemberCoupon.objects.filter(member=self.object)
            .select_related("design", "voucher")
            .order_by("-issued_at", "-id")[: self.coupons_shown + 1]
        )
        label_states(member_coupons, now)
        return {
            "member_coupons": member_coupons[: self.coupons_shown],
            "more_coupons": len(member_coupons) > self.coupons_shown,
            "can_list_coupons": self.request.user.has_perm(
                "oscar_loyalty.view_membercoupon"
            ),
        }

    def get_referral_context(self):
        """Who referred the member and the newest members they referred, in one
        query (both members and their customers by join; the member's own
        referral first); one more is read only to know whether there are more."""
        member = self.object
        rows = list(
            Referral.objects.filter(Q(referrer=member) | Q(referred=member))
            .select_related("referrer__user", "referred__user")
            .annotate(
                theirs=Case(When(referred=member, then=Value(0)), default=Value(1))
            )
            .order_by("theirs", "-created_at", "-id")[: self.referrals_shown + 2]
        )
        referred_by = rows[0] if rows and rows[0].referred_id == member.pk else None
        made = [row for row in rows if row.referrer_id == member.pk]
        return {
            "referred_by": referred_by,
            "referrals_made": made[: self.referrals_shown],
            "more_referrals": len(made) > self.referrals_shown,
            "can_list_referrals": self.request.user.has_perm(
                "oscar_loyalty.view_referral"
            ),
        }

    def get_order_context(self):
        """The member's newest orders with the points each earned: one query for
        the orders, one for their points (one more order is read only to know
        whether there are more)."""
        member = self.object
        orders = list(
            Order.objects.filter(user_id=member.user_id)
            .only("number", "date_placed", "status", "total_incl_tax", "currency")
            .order_by("-date_placed", "-id")[: self.orders_shown + 1]
        )
        numbers = [order.number for order in orders]
        earned = (
            dict(
                Lot.objects.filter(
                    member=member, source=Lot.Source.EARN, order_number__in=numbers
                )
                .values("order_number")
                .annotate(points=Sum("points"))
                .values_list("order_number", "points")
            )
            if numbers
            else {}
        )
        for order in orders:
            order.points_earned = earned.get(order.number, 0)
        return {
            "member_orders": orders[: self.orders_shown],
            "more_orders": len(orders) > self.orders_shown,
            "can_view_orders": self.request.user.has_perm("order.view_order"),
        }

    def get_note_context(self):
        return {
            "notes": list(
                MemberNote.objects.filter(member=self.object)[: self.notes_shown]
            ),
            "can_add_note": self.can_add_note(),
        }

    def get_consent_context(self):
        """Each purpose with the member's answer and its last change, and the
        newest changes (two queries)."""
        member = self.object
        return {
            "consents": consent.answers(member),
            "consent_history": consent.history(member, limit=self.consents_shown),
            "consent_form": getattr(self, "consent_form", None)
            or MemberConsentForm(
                initial={p.value: v for p, v in consent.current(member).items()}
            ),
        }

    def can_add_note(self):
        return self.request.user.has_perm("oscar_loyalty.add_membernote")

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
            can_issue_coupon=self.can_issue_coupon(),
            **self.get_tier_context(),
            **self.get_coupon_context(),
            **self.get_referral_context(),
            **self.get_order_context(),
            **self.get_note_context(),
            **self.get_consent_context(),
            score=scoring.score_of(self.object),
            can_record_consent=self.request.user.has_perm(
                "oscar_loyalty.record_consent"
            ),
        )
        if context["can_add_note"]:
            context.setdefault("note_form", MemberNoteForm())
        if context["can_adjust"]:
            context.setdefault("adjustment_form", AdjustmentForm())
        if context["can_set_tier"]:
            context.setdefault("tier_form", self.initial_tier_form())
        if context["can_issue_coupon"]:
            context.setdefault("coupon_form", IssueCouponForm(member=self.object))
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
                self.report(
                    member, points, already_written, form.cleaned_data["reason"]
                )
                return redirect(
                    reverse(
                        "loyalty_dashboard:loyalty-member-detail",
                        kwargs={"pk": member.pk},
                    )
                )
        return self.render_to_response(self.get_context_data(adjustment_form=form))

    def report(self, member, points, already_written, reason):
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
        audit(self.request, member, CHANGE, f"Adjusted points by {points:+d}: {reason}")
        if points > 0:
            message = _("Added %(points)s points to member %(number)s.")
        else:
            message = _("Took %(points)s points away from member %(number)s.")
        messages.success(
            self.request, message % {"points": abs(points), "number": member.number}
        )


class MemberNoteView(MemberDetailView):
    """POST: staff write a note on a member for colleagues (audited). The form's
    hidden key makes a double submission one note; an empty note is refused on
    the form and nothing is written."""

    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        self.object = member = self.get_object()
        form = MemberNoteForm(request.POST)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(note_form=form))
        note, created = MemberNote.objects.get_or_create(
            key=str(form.cleaned_data["key"]),
            defaults={
                "member": member,
                "text": form.cleaned_data["text"],
                "author": request.user,
                "author_name": request.user.get_full_name()
                or request.user.get_username(),
            },
        )
        if note.member_id != member.pk:
            raise PermissionDenied  # a key of another member's form
        if created:
            audit(request, member, CHANGE, f"Added a note: {note.text[:200]}")
            messages.success(request, _("Note added."))
        return redirect(
            reverse("loyalty_dashboard:loyalty-member-detail", kwargs={"pk": member.pk})
        )


class MemberConsentView(MemberDetailView):
    """POST: staff record consent the member gave or withdrew by phone or in
    person (source "Staff, on the member's request", with who and how; audited).
    A bad form changes nothing and is shown again with its errors."""

    http_method_names = ["post"]

    def post(self, request, *args, **kwargs):
        self.object = member = self.get_object()
        form = self.consent_form = MemberConsentForm(request.POST)
        if not form.is_valid():
            return self.render_to_response(self.get_context_data(), status=400)
        changes = consent.record(
            member,
            {purpose: form.cleaned_data[purpose.value] for purpose in consent.Purpose},
            source=consent.Source.STAFF,
            actor=request.user,
        )
        if changes:
            summary = ", ".join(
                f"{change.purpose} {'given' if change.granted else 'withdrawn'}"
                for change in changes
            )
            audit(
                request,
                member,
                CHANGE,
                f"Consent on the member's request: {summary} "
                f"({form.cleaned_data['reason']})",
            )
            messages.success(request, _("The member's choices are recorded."))
        else:
            messages.info(
                request, _("Nothing changed: the member's choices were already so.")
            )
        return redirect(
            reverse("loyalty_dashboard:loyalty-member-detail", kwargs={"pk": member.pk})
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
                self.report(member, tier, form.cleaned_data["reason"], day)
                return redirect(
                    reverse(
                        "loyalty_dashboard:loyalty-member-detail",
                        kwargs={"pk": member.pk},
                    )
                )
        return self.render_to_response(self.get_context_data(tier_form=form))

    def report(self, member, tier, reason, protect_until):
        logger.info(
            "Staff user %s set the tier of member %s to %s",
            self.request.user.pk,
            member.number,
            tier.code if tier else None,
        )
        protection = f", protected until {protect_until}" if protect_until else ""
        audit(
            self.request,
            member,
            CHANGE,
            f"Set tier to {tier.name if tier else 'none'}{protection}: {reason}",
        )
        if tier is None:
            message = _("Member %(number)s now has no tier.")
        else:
            message = _("Member %(number)s is now in %(tier)s.")
        messages.success(
            self.request,
            message % {"number": member.number, "tier": tier.name if tier else ""},
        )


class MemberIssueCouponView(View):
    """POST: staff give a member a coupon of an issuing design, with a reason.

    Writes through :func:`oscar_loyalty.services.coupons.issue_by_staff`, whose
    coupon keeps the reason and the staff user; the admin log records it on the
    member. The form's hidden key is the service's token, so submitting the same
    form twice issues one coupon (and one log entry). Refused input (no reason, a
    design that is not issuing, an out-of-date form) is said in a message and
    nothing is written; either way the member's page is shown again.
    """

    http_method_names = ["post"]

    def post(self, request, pk):
        member = get_object_or_404(Member.objects.select_related("tier"), pk=pk)
        form = IssueCouponForm(request.POST, member=member)
        if not form.is_valid():
            self.refuse(form.errors.values())
        else:
            now = timezone.now()
            try:
                with transaction.atomic():  # no coupon without its audit entry
                    coupon = coupons.issue_by_staff(
                        member=member,
                        design=form.cleaned_data["design"],
                        reason=form.cleaned_data["reason"],
                        actor=ledger.Actor.from_user(request.user),
                        key=form.cleaned_data["key"],
                        now=now,
                    )
                    # The key's coupon from an earlier submission was issued
                    # before this request began.
                    already_issued = coupon.issued_at != now
                    if not already_issued:
                        audit(
                            request,
                            member,
                            CHANGE,
                            f"Issued coupon #{coupon.pk} of design "
                            f"“{coupon.design.name}” (#{coupon.design_id}); "
                            f"reason: {coupon.reason}",
                        )
            except CouponReasonRequired as error:
                self.refuse([[str(error)]])
            else:
                if already_issued:
                    messages.info(
                        request,
                        _("This coupon was already issued; nothing was changed."),
                    )
                else:
                    self.report(member, coupon)
        return redirect(
            reverse("loyalty_dashboard:loyalty-member-detail", kwargs={"pk": pk})
        )

    def refuse(self, error_lists):
        for errors in error_lists:
            for error in errors:
                messages.error(
                    self.request,
                    _("No coupon was issued: %(error)s") % {"error": error},
                )

    def report(self, member, coupon):
        logger.info(
            "Staff user %s issued coupon %s (design %s) to member %s",
            self.request.user.pk,
            coupon.pk,
            coupon.design_id,
            member.number,
        )
        messages.success(
            self.request,
            _("Coupon “%(design)s” issued to member %(number)s, code %(code)s.")
            % {
                "design": coupon.design.name,
                "number": member.number,
                "code": coupon.voucher.code,
            },
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


#: What the admin log records of an earn rule, before → after.
EARN_RULE_AUDITED = ("name", "range", "multiplier", "starts_at", "ends_at", "is_active")


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
        self.object.refresh_from_db()  # values as stored, as the update view logs
        audit(
            self.request,
            self.object,
            ADDITION,
            audit_created("earn rule", audit_snapshot(self.object, EARN_RULE_AUDITED))
            + "; version 1",
        )
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
        before = audit_snapshot(self.get_object(), EARN_RULE_AUDITED)
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
        after = audit_snapshot(rule, EARN_RULE_AUDITED)
        audit(
            self.request,
            rule,
            CHANGE,
            f"{audit_changed(before, after)}; now version {rule.version}",
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
        tier.refresh_from_db()
        audit(
            self.request,
            tier,
            ADDITION,
            audit_created("tier", audit_snapshot(tier, TIER_AUDIT_FIELDS)),
        )
        messages.success(
            self.request, _("Tier “%(name)s” created.") % {"name": tier.name}
        )
        return redirect(self.get_success_url())


class TierUpdateView(TierFormMixin, UpdateView):
    """Edit a tier; the admin log records each changed field, before → after."""

    context_object_name = "tier"

    def form_valid(self, form):
        before = audit_snapshot(self.get_object(), TIER_AUDIT_FIELDS)
        tier = self.save_tier(form)
        if tier is None:
            return self.form_invalid(form)
        self.object = tier
        tier.refresh_from_db()
        after = audit_snapshot(tier, TIER_AUDIT_FIELDS)
        logger.info(
            "Staff user %s changed tier %s (%s)",
            self.request.user.pk,
            tier.code,
            ", ".join(form.changed_data) or "nothing",
        )
        audit(self.request, tier, CHANGE, audit_changed(before, after))
        messages.success(
            self.request, _("Tier “%(name)s” saved.") % {"name": tier.name}
        )
        return redirect(self.get_success_url())


# Coupons ---------------------------------------------------------------------------

#: A coupon's :meth:`~oscar_loyalty.models.MemberCoupon.state` as staff read it.
COUPON_STATE_LABELS = {
    "usable": gettext_lazy("Usable"),
    "used": gettext_lazy("Used"),
    "expired": gettext_lazy("Expired"),
    "scheduled": gettext_lazy("Not started"),
}


def label_states(coupons, now):
    """Give each coupon its state now and the words for it (for the lists)."""
    for coupon in coupons:
        coupon.current_state = coupon.state(now)
        coupon.state_label = COUPON_STATE_LABELS[coupon.current_state]


def benefit_summary(design):
    """What a design's coupons give, in a few words: "¥20.00 off, min ¥50.00",
    "10% off", "Free shipping", "Jasmine tea free"."""
    kind = design.benefit_type
    if kind == CouponDesign.BenefitType.SHIPPING:
        benefit = _("Free shipping")
    elif kind == CouponDesign.BenefitType.PRODUCT:
        # Callers listing designs join the product (``select_related``).
        product = design.product
        benefit = (
            _("%(product)s free") % {"product": product.get_title()}
            if product is not None
            else _("A product free")
        )
    elif kind == CouponDesign.BenefitType.PERCENTAGE:
        benefit = _("%(percent)s%% off") % {"percent": floatformat(design.value, -2)}
    else:
        benefit = _("%(amount)s off") % {"amount": currency(design.value)}
    if design.minimum_spend > 0:
        return _("%(benefit)s, min %(minimum)s") % {
            "benefit": benefit,
            "minimum": currency(design.minimum_spend),
        }
    return benefit


class CouponDesignListView(ListView):
    """Coupon designs, issuing ones first, with how many coupons each issued and
    how many of those were used on at least one order.

    One query for the page, the counts grouped in it (``Count`` over the coupons
    and their vouchers), and one for the paginator's count, however many designs
    and coupons. Designs are switched off, never deleted: coupons refer to them.
    """

    template_name = "oscar_loyalty/dashboard/coupondesign_list.html"
    context_object_name = "designs"
    paginate_by = 50

    def get_queryset(self):
        return (
            CouponDesign.objects.select_related("tier", "product__parent")
            .annotate(
                issued_count=Count("coupons"),
                used_count=Count(
                    "coupons", filter=Q(coupons__voucher__num_orders__gt=0)
                ),
            )
            .order_by("-is_active", "purpose", "name", "pk")
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        for design in context["designs"]:
            design.benefit_summary = benefit_summary(design)
        user = self.request.user
        context.update(
            can_add=user.has_perm("oscar_loyalty.add_coupondesign"),
            can_change=user.has_perm("oscar_loyalty.change_coupondesign"),
            can_list_coupons=user.has_perm("oscar_loyalty.view_membercoupon"),
        )
        return context


#: Design fields in the order the admin log lists them.
COUPON_DESIGN_AUDIT_FIELDS = CouponDesignForm.Meta.fields


class CouponDesignFormMixin:
    """Saving a design, shared by create and edit. Saving is all: the
    ``post_save`` receiver keeps the design's Oscar voucher offer in step, in the
    same transaction."""

    model = CouponDesign
    form_class = CouponDesignForm
    template_name = "oscar_loyalty/dashboard/coupondesign_form.html"

    def get_success_url(self):
        return reverse("loyalty_dashboard:loyalty-coupondesign-list")

    def save_design(self, form):
        """The saved design, read back so the admin log shows stored values."""
        with transaction.atomic():
            design = form.save()
        design.refresh_from_db()
        return design


class CouponDesignCreateView(CouponDesignFormMixin, CreateView):
    def form_valid(self, form):
        design = self.object = self.save_design(form)
        logger.info(
            "Staff user %s created coupon design %s", self.request.user.pk, design.pk
        )
        design.refresh_from_db()
        audit(
            self.request,
            design,
            ADDITION,
            audit_created(
                "coupon design", audit_snapshot(design, COUPON_DESIGN_AUDIT_FIELDS)
            ),
        )
        messages.success(
            self.request,
            _("Coupon design “%(name)s” created.") % {"name": design.name},
        )
        return redirect(self.get_success_url())


class CouponDesignUpdateView(CouponDesignFormMixin, UpdateView):
    """Edit a design; the admin log records each changed field, before → after.

    An issuing tier-exclusive design also offers to issue its coupons to the
    members already in its tier (:class:`CouponDesignIssueTierView`).
    """

    context_object_name = "design"

    def get_queryset(self):
        return CouponDesign.objects.select_related("tier")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        design = self.object
        context.update(
            can_issue_to_tier=(
                design.purpose == CouponDesign.Purpose.TIER
                and design.is_active
                and design.tier_id is not None
                and self.request.user.has_perm("oscar_loyalty.issue_coupon")
            ),
            issued_count=design.coupons.count(),
        )
        return context

    def form_valid(self, form):
        before = audit_snapshot(self.get_object(), COUPON_DESIGN_AUDIT_FIELDS)
        design = self.object = self.save_design(form)
        design.refresh_from_db()
        after = audit_snapshot(design, COUPON_DESIGN_AUDIT_FIELDS)
        logger.info(
            "Staff user %s changed coupon design %s (%s)",
            self.request.user.pk,
            design.pk,
            ", ".join(form.changed_data) or "nothing",
        )
        audit(self.request, design, CHANGE, audit_changed(before, after))
        messages.success(
            self.request, _("Coupon design “%(name)s” saved.") % {"name": design.name}
        )
        return redirect(self.get_success_url())


class CouponDesignIssueTierView(View):
    """POST: issue the tier-exclusive coupons to the members already in the tiers.

    Members who reach a tier get its coupons as they reach it; this reaches those
    who were there before the design existed or was switched on. The task issues
    every issuing tier-exclusive design once per member (its keys), so pressing
    again, or a member who already has one, issues nothing twice. It is queued
    once the admin log entry is committed.
    """

    http_method_names = ["post"]

    def post(self, request, pk):
        design = get_object_or_404(CouponDesign.objects.select_related("tier"), pk=pk)
        if not (
            design.purpose == CouponDesign.Purpose.TIER
            and design.is_active
            and design.tier_id is not None
        ):
            messages.error(
                request,
                _(
                    "Only an issuing tier-exclusive design can be issued to the "
                    "members of its tier: nothing was issued."
                ),
            )
        else:
            with transaction.atomic():
                audit(
                    request,
                    design,
                    CHANGE,
                    f"Issued to current members of {design.tier.code} and above",
                )
                transaction.on_commit(
                    partial(tasks.issue_tier_coupons_to_all.delay, design.pk),
                    robust=True,
                )
            logger.info(
                "Staff user %s issued coupon design %s to tier %s and above",
                request.user.pk,
                design.pk,
                design.tier.code,
            )
            messages.success(
                request,
                _(
                    "Issuing “%(name)s” to the current members of %(tier)s and "
                    "above. Members who already have it get no second one."
                )
                % {"name": design.name, "tier": design.tier.name},
            )
        return redirect(
            reverse("loyalty_dashboard:loyalty-coupondesign-update", kwargs={"pk": pk})
        )


class CouponListView(ExportMixin, ListView):
    """Issued coupons, newest first, found by code, member, design and state.

    Three queries for a page whatever its length: the count, the coupons with
    their member, customer, design and voucher by join, and the orders they were
    used on (Oscar's voucher applications, prefetched for the page).
    """

    template_name = "oscar_loyalty/dashboard/coupon_list.html"
    context_object_name = "coupons"
    paginate_by = settings.OSCAR_DASHBOARD_ITEMS_PER_PAGE
    export_kind = ExportRecord.Kind.COUPONS

    def export_header(self):
        return [
            _("Code"),
            _("Member number"),
            _("E-mail"),
            _("Coupon"),
            _("Issued"),
            _("Valid until"),
            _("State"),
            _("Reason"),
            _("Issued by"),
            _("Orders"),
        ]

    def export_rows(self, coupons):
        for coupon in coupons.iterator(chunk_size=1000):
            label_states([coupon], self.now)
            yield [
                coupon.voucher.code,
                coupon.member.number,
                coupon.member.user.email,
                coupon.design.name,
                coupon.issued_at,
                coupon.voucher.end_datetime,
                str(coupon.state_label),
                coupon.reason,
                coupon.actor_name,
                " ".join(
                    application.order.number for application in coupon.voucher.used_on
                ),
            ]

    def get_queryset(self):
        self.now = timezone.now()
        self.form = CouponSearchForm(self.request.GET)
        applications = (
            VoucherApplication.objects.select_related("order")
            .only("voucher", "order__number")
            .order_by("date_created", "pk")
        )
        issued = (
            MemberCoupon.objects.select_related("member__user", "design", "voucher")
            .prefetch_related(
                Prefetch("voucher__applications", applications, to_attr="used_on")
            )
            .order_by("-issued_at", "-id")
        )
        return self.form.filter(issued, self.now)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        label_states(context["coupons"], self.now)
        user = self.request.user
        context.update(
            form=self.form,
            can_view_members=user.has_perm("oscar_loyalty.view_member"),
            can_view_orders=user.has_perm("order.view_order"),
        )
        return context


# Audit of programme changes -----------------------------------------------------------


def audit_value(value):
    """A field's value as the admin log writes it: tiers by code, other rows by
    name and id, a dash for nothing."""
    if value is None or value == "":
        return "—"
    if isinstance(value, Tier):
        return value.code
    if isinstance(value, Model):
        return f"{value} (#{value.pk})"
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)


def audit_snapshot(obj, fields):
    """{field: value as logged} of ``obj``; a many-to-many field lists its rows."""
    snapshot = {}
    for name in fields:
        value = getattr(obj, name)
        if hasattr(value, "all"):  # a related manager
            rows = sorted(audit_value(row) for row in value.all())
            snapshot[name] = ", ".join(rows) or "—"
        else:
            snapshot[name] = audit_value(value)
    return snapshot


def audit_created(what, after):
    return f"Created {what}: " + "; ".join(
        f"{name}: {value}" for name, value in after.items()
    )


def audit_changed(before, after):
    """ "Changed name: A → B; …" for the fields whose logged value changed."""
    changes = [
        f"{name}: {before[name]} → {value}"
        for name, value in after.items()
        if before.get(name) != value
    ]
    return "Changed " + ("; ".join(changes) if changes else "nothing")


def window_status(starts_at, ends_at, now):
    """ "scheduled", "running" or "ended" for a window (open ends allowed)."""
    if starts_at and starts_at > now:
        return "scheduled"
    if ends_at and ends_at <= now:
        return "ended"
    return "running"


WINDOW_STATUS_LABELS = {
    "scheduled": gettext_lazy("Scheduled"),
    "running": gettext_lazy("Running"),
    "ended": gettext_lazy("Ended"),
}


class AuditedFormMixin:
    """Create or edit a programme row with its admin log entry, in one transaction.

    The entry lists every field on creation and each changed field, before →
    after, on edit (many-to-many fields included). ``audit_fields`` are logged;
    ``audit_name`` is what the log calls the row; ``created_message`` or
    ``saved_message`` is shown.
    """

    audit_fields = ()
    audit_name = ""
    created_message = ""
    saved_message = ""

    def snapshot(self, obj):
        return audit_snapshot(obj, self.audit_fields)

    def save_object(self, form):
        return form.save()

    def form_valid(self, form):
        creating = form.instance.pk is None
        before = None if creating else self.snapshot(self.get_object())
        with transaction.atomic():
            obj = self.object = self.save_object(form)
            obj.refresh_from_db()
            after = self.snapshot(obj)
            if creating:
                audit(
                    self.request, obj, ADDITION, audit_created(self.audit_name, after)
                )
            else:
                audit(self.request, obj, CHANGE, audit_changed(before, after))
        logger.info(
            "Staff user %s %s %s %s",
            self.request.user.pk,
            "created" if creating else "changed",
            self.audit_name,
            obj.pk,
        )
        message = self.created_message if creating else self.saved_message
        messages.success(self.request, message % {"name": str(obj)})
        return redirect(self.get_success_url())


# Rewards ---------------------------------------------------------------------------

REWARD_STATE_LABELS = {
    "available": gettext_lazy("Available"),
    "inactive": gettext_lazy("Inactive"),
    "design_off": gettext_lazy("Coupon design not issuing"),
    "out_of_stock": gettext_lazy("Out of stock"),
    **WINDOW_STATUS_LABELS,
}


def reward_state(reward, now):
    """Whether members can redeem the reward now, and if not why, as a key of
    :data:`REWARD_STATE_LABELS` (the checks of ``services.rewards.is_available``
    and the stock)."""
    if not reward.is_active:
        return "inactive"
    if not reward.design.is_active:
        return "design_off"
    status = window_status(reward.starts_at, reward.ends_at, now)
    if status != "running":
        return status
    if reward.stock is not None and reward.stock < 1:
        return "out_of_stock"
    return "available"


class RewardListView(ListView):
    """The rewards catalogue, active rewards first in the shoppers' order, with
    how many times each was redeemed and how many of those had their points back.

    One query for the page with both counts grouped in it, one for the tiers of
    the page's rewards and one for the paginator's count, however many rewards
    and redemptions. Rewards are switched off, never deleted: redemptions refer
    to them.
    """

    template_name = "oscar_loyalty/dashboard/reward_list.html"
    context_object_name = "rewards"
    paginate_by = 50

    def get_queryset(self):
        return (
            Reward.objects.select_related("design__product__parent")
            .prefetch_related(Prefetch("tiers", Tier.objects.order_by("rank")))
            .annotate(
                redeemed_count=Count("redemptions"),
                refunded_count=Count(
                    "redemptions", filter=Q(redemptions__refunded_at__isnull=False)
                ),
            )
            .order_by("-is_active", "position", "points_price", "pk")
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        now = timezone.now()
        for reward in context["rewards"]:
            reward.benefit_summary = benefit_summary(reward.design)
            reward.state = reward_state(reward, now)
            reward.state_label = REWARD_STATE_LABELS[reward.state]
        user = self.request.user
        context.update(
            can_add=user.has_perm("oscar_loyalty.add_reward"),
            can_change=user.has_perm("oscar_loyalty.change_reward"),
        )
        return context


class RewardFormMixin(AuditedFormMixin):
    """Saving a reward, shared by create and edit."""

    model = Reward
    form_class = RewardForm
    template_name = "oscar_loyalty/dashboard/reward_form.html"
    audit_fields = RewardForm.Meta.fields
    audit_name = "reward"
    created_message = gettext_lazy("Reward “%(name)s” created.")
    saved_message = gettext_lazy("Reward “%(name)s” saved.")

    def get_success_url(self):
        return reverse("loyalty_dashboard:loyalty-reward-list")


class RewardCreateView(RewardFormMixin, CreateView):
    pass


class RewardUpdateView(RewardFormMixin, UpdateView):
    """Edit a reward; the admin log records each changed field, before → after."""

    context_object_name = "reward"

    def get_queryset(self):
        return Reward.objects.select_related("design").prefetch_related("tiers")

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["redeemed_count"] = self.object.redemptions.count()
        return context


class RewardRedemptionListView(ListView):
    """A reward's redemptions, newest first: the member, the points, the coupon
    issued with its state and when the points came back.

    One query for the page (member, customer, coupon and voucher by join), one
    for the count and one for the reward, however many redemptions.
    """

    template_name = "oscar_loyalty/dashboard/reward_redemptions.html"
    context_object_name = "redemptions"
    paginate_by = settings.OSCAR_DASHBOARD_ITEMS_PER_PAGE

    def get_queryset(self):
        self.reward = get_object_or_404(Reward, pk=self.kwargs["pk"])
        return (
            RewardRedemption.objects.filter(reward=self.reward)
            .select_related("member__user", "coupon__voucher")
            .order_by("-created_at", "-id")
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        now = timezone.now()
        # A coupon whose voucher was deleted in Oscar is gone with it.
        label_states(
            [r.coupon for r in context["redemptions"] if r.coupon is not None], now
        )
        user = self.request.user
        context.update(
            reward=self.reward,
            can_view_members=user.has_perm("oscar_loyalty.view_member"),
            can_change=user.has_perm("oscar_loyalty.change_reward"),
        )
        return context


# Campaigns -------------------------------------------------------------------------


class CampaignListView(ListView):
    """Campaigns, newest start first, with their audience and whether they are
    scheduled, running or ended.

    One query for the page, one for the audience tiers of its campaigns and one
    for the paginator's count, however many campaigns.
    """

    template_name = "oscar_loyalty/dashboard/campaign_list.html"
    context_object_name = "campaigns"
    paginate_by = 50

    def get_queryset(self):
        return (
            Campaign.objects.select_related("range", "coupon_design")
            .prefetch_related(Prefetch("tiers", Tier.objects.order_by("rank")))
            .order_by("-starts_at", "-id")
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        now = timezone.now()
        for campaign in context["campaigns"]:
            campaign.status = window_status(campaign.starts_at, campaign.ends_at, now)
            campaign.status_label = WINDOW_STATUS_LABELS[campaign.status]
        user = self.request.user
        context.update(
            can_add=user.has_perm("oscar_loyalty.add_campaign"),
            can_change=user.has_perm("oscar_loyalty.change_campaign"),
        )
        return context


def steps_audit_value(steps):
    """A campaign's steps as the admin log writes them: "200.00/50.00, …"."""
    return ", ".join(f"{step.threshold}/{step.amount}" for step in steps) or "—"


class CampaignFormMixin(AuditedFormMixin):
    """Saving a campaign and its spend-X-save-Y steps, shared by create and edit.

    The campaign form and the steps formset are checked together; the steps are
    only read (and required) for a spend-X-save-Y campaign, and the campaign and
    its steps are saved in one transaction with the admin log entry. Saving is
    all: the receivers keep the campaign's Oscar offer (its first threshold
    included) and earn rule in step as each row is written.
    """

    model = Campaign
    form_class = CampaignForm
    template_name = "oscar_loyalty/dashboard/campaign_form.html"
    audit_fields = CampaignForm.Meta.fields
    audit_name = "campaign"
    created_message = gettext_lazy("Campaign “%(name)s” created.")
    saved_message = gettext_lazy("Campaign “%(name)s” saved.")

    def get_success_url(self):
        return reverse("loyalty_dashboard:loyalty-campaign-list")

    def get_formset(self, required=False):
        instance = self.object if self.object is not None else Campaign()
        if self.request.method == "POST":
            return CampaignStepFormSet(
                self.request.POST, instance=instance, prefix="steps", required=required
            )
        return CampaignStepFormSet(instance=instance, prefix="steps")

    def get_context_data(self, **kwargs):
        kwargs.setdefault("formset", self.get_formset())
        context = super().get_context_data(**kwargs)
        context["spend_save"] = Campaign.Kind.SPEND_SAVE
        return context

    def post(self, request, *args, **kwargs):
        self.object = self.get_object() if self.pk_url_kwarg in kwargs else None
        form = self.get_form()
        form_valid = form.is_valid()
        has_steps = form.cleaned_data.get("kind") == Campaign.Kind.SPEND_SAVE
        formset = self.get_formset(required=has_steps)
        if form_valid and (not has_steps or formset.is_valid()):
            self.steps_formset = formset if has_steps else None
            return self.form_valid(form)
        return self.render_to_response(
            self.get_context_data(form=form, formset=formset)
        )

    def snapshot(self, campaign):
        snapshot = super().snapshot(campaign)
        snapshot["steps"] = steps_audit_value(campaign.steps.order_by("threshold"))
        return snapshot

    def save_object(self, form):
        campaign = form.save()
        if self.steps_formset is not None:
            self.save_steps(campaign, self.steps_formset)
        return campaign

    def save_steps(self, campaign, formset):
        """Make the campaign's steps those of the formset: steps no longer wanted
        go first, then the new ones are added, so no two share a spend on the
        way (changing a step's spend or amount replaces it)."""
        wanted = [
            (form.cleaned_data["threshold"], form.cleaned_data["amount"])
            for form in formset.kept_forms()
        ]
        stored = {(step.threshold, step.amount): step for step in campaign.steps.all()}
        for pair, step in stored.items():
            if pair not in wanted:
                step.delete()
        for threshold, amount in wanted:
            if (threshold, amount) not in stored:
                CampaignStep.objects.create(
                    campaign=campaign, threshold=threshold, amount=amount
                )


class CampaignCreateView(CampaignFormMixin, CreateView):
    pass


class CampaignUpdateView(CampaignFormMixin, UpdateView):
    """Edit a campaign; the admin log records each changed field and the steps,
    before → after. Two staff saving its steps at once is shown on the form."""

    context_object_name = "campaign"

    def get_queryset(self):
        return Campaign.objects.select_related(
            "range", "coupon_design"
        ).prefetch_related("tiers")

    def form_valid(self, form):
        try:
            return super().form_valid(form)
        except IntegrityError:
            form.add_error(
                None,
                _(
                    "The steps of this campaign were changed by someone else "
                    "meanwhile: check them and save again."
                ),
            )
            self.object = self.get_object()
            formset = self.steps_formset or self.get_formset()
            return self.render_to_response(
                self.get_context_data(form=form, formset=formset)
            )


class CampaignReportView(ExportMixin, DetailView):
    """What a campaign gave and brought (:func:`oscar_loyalty.campaigns.report`)
    and the orders it applied to, newest first.

    The figures take the report's four queries; the orders page one query (the
    member and whether the order was cancelled come by subquery) and one for its
    count, however many orders.
    """

    template_name = "oscar_loyalty/dashboard/campaign_report.html"
    context_object_name = "campaign"
    orders_per_page = settings.OSCAR_DASHBOARD_ITEMS_PER_PAGE

    def get_queryset(self):
        return Campaign.objects.select_related(
            "range", "coupon_design", "earn_rule"
        ).prefetch_related(Prefetch("tiers", Tier.objects.order_by("rank")))

    def campaign_orders(self):
        members = Member.objects.filter(user_id=OuterRef("user_id"))
        cancelled = OrderActivity.objects.filter(
            order_number=OuterRef("order_number"), cancelled_at__isnull=False
        )
        return self.object.orders.annotate(
            member_id=Subquery(members.values("pk")[:1]),
            member_number=Subquery(members.values("number")[:1]),
            cancelled=Exists(cancelled),
        ).order_by("-placed_at", "-id")

    def get_orders_page(self):
        return Paginator(self.campaign_orders(), self.orders_per_page).get_page(
            self.request.GET.get("page")
        )

    export_kind = ExportRecord.Kind.CAMPAIGN

    def get_export_queryset(self):
        self.object = self.get_object()
        return self.campaign_orders()

    def export_header(self):
        return [
            _("Order number"),
            _("Placed"),
            _("Member number"),
            _("Revenue"),
            _("Discount"),
            _("Cancelled"),
        ]

    def export_rows(self, orders):
        for order in orders.iterator(chunk_size=2000):
            yield [
                order.order_number,
                order.placed_at,
                order.member_number or "",
                order.revenue,
                order.discount,
                _("Yes") if order.cancelled else _("No"),
            ]

    def export_filters(self):
        return {"campaign": f"{self.object.pk}: {self.object.name}"}

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        campaign = self.object
        page = self.get_orders_page()
        status = window_status(campaign.starts_at, campaign.ends_at, timezone.now())
        user = self.request.user
        context.update(
            report=campaign_report(campaign),
            status_label=WINDOW_STATUS_LABELS[status],
            steps=list(campaign.steps.all()),
            orders=page.object_list,
            page_obj=page,
            paginator=page.paginator,
            is_paginated=page.has_other_pages(),
            can_change=user.has_perm("oscar_loyalty.change_campaign"),
            can_view_members=user.has_perm("oscar_loyalty.view_member"),
            can_view_orders=user.has_perm("order.view_order"),
        )
        return context


# Action rewards --------------------------------------------------------------------


class ActionRuleListView(TemplateView):
    """Every action that can earn points, with its rule or "off" when it has none.

    One query: the rules, matched to the actions in Python.
    """

    template_name = "oscar_loyalty/dashboard/actionrule_list.html"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        rules = {rule.action: rule for rule in ActionRule.objects.all()}
        user = self.request.user
        context.update(
            actions=[
                {"code": code, "label": label, "rule": rules.get(code)}
                for code, label in ActionRule.Action.choices
            ],
            can_add=user.has_perm("oscar_loyalty.add_actionrule"),
            can_change=user.has_perm("oscar_loyalty.change_actionrule"),
        )
        return context


class ActionRuleFormMixin(AuditedFormMixin):
    model = ActionRule
    form_class = ActionRuleForm
    template_name = "oscar_loyalty/dashboard/actionrule_form.html"
    audit_fields = ["action", *ActionRuleForm.Meta.fields]
    audit_name = "action reward"
    created_message = gettext_lazy("Action reward “%(name)s” created.")
    saved_message = gettext_lazy("Action reward “%(name)s” saved.")

    def get_success_url(self):
        return reverse("loyalty_dashboard:loyalty-actionrule-list")


class ActionRuleCreateView(ActionRuleFormMixin, CreateView):
    """Switch an action on: its first rule. An action has one rule at most, so an
    action that has one already is edited instead; two staff creating it at once
    are told on the form."""

    def dispatch(self, request, *args, **kwargs):
        self.action = kwargs["action"]
        if self.action not in ActionRule.Action.values:
            raise Http404("No such action")
        existing = ActionRule.objects.filter(action=self.action).first()
        if existing is not None:
            return redirect(
                reverse(
                    "loyalty_dashboard:loyalty-actionrule-update",
                    kwargs={"pk": existing.pk},
                )
            )
        return super().dispatch(request, *args, **kwargs)

    def get_form_kwargs(self):
        kwargs = super().get_form_kwargs()
        kwargs["instance"] = ActionRule(action=self.action)
        return kwargs

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["action_label"] = ActionRule.Action(self.action).label
        return context

    def form_valid(self, form):
        try:
            return super().form_valid(form)
        except IntegrityError:
            form.add_error(
                None,
                _(
                    "Someone else set up this action meanwhile: go back to the "
                    "action rewards and edit it there."
                ),
            )
            form.instance.pk = None
            return self.form_invalid(form)


class ActionRuleUpdateView(ActionRuleFormMixin, UpdateView):
    """Edit an action's rule; the admin log records each change, before → after."""

    context_object_name = "rule"

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["action_label"] = self.object.get_action_display()
        return context


# Referrals -------------------------------------------------------------------------


class ReferralListView(ListView):
    """Referrals, newest first, by status and by member (referrer or new member).

    One query for the page (both members and their customers by join) and one
    for the count, however many referrals.
    """

    template_name = "oscar_loyalty/dashboard/referral_list.html"
    context_object_name = "referrals"
    paginate_by = settings.OSCAR_DASHBOARD_ITEMS_PER_PAGE

    def get_queryset(self):
        self.form = ReferralSearchForm(self.request.GET)
        referrals = Referral.objects.select_related(
            "referrer__user", "referred__user"
        ).order_by("-created_at", "-id")
        return self.form.filter(referrals)

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        user = self.request.user
        context.update(
            form=self.form,
            can_view_members=user.has_perm("oscar_loyalty.view_member"),
            can_view_orders=user.has_perm("order.view_order"),
        )
        return context


# The points ledger -----------------------------------------------------------------


class LedgerView(ExportMixin, ListView):
    """Every posting of the ledger, newest first, with what it changed (points
    to spend, pending), by member, kind and dates; downloadable for the books.

    One query for the page (member and customer by join, the changes summed from
    the entries in the same statement) and one for the count.
    """

    template_name = "oscar_loyalty/dashboard/ledger.html"
    context_object_name = "postings"
    paginate_by = settings.OSCAR_DASHBOARD_ITEMS_PER_PAGE
    export_kind = ExportRecord.Kind.LEDGER

    def get_queryset(self):
        self.form = LedgerSearchForm(self.request.GET)
        postings = (
            Posting.objects.select_related("member__user")
            .annotate(
                available_change=Coalesce(Sum("entries__available_change"), 0),
                pending_change=Coalesce(Sum("entries__pending_change"), 0),
            )
            .order_by("-created_at", "-id")
        )
        return self.form.filter(postings)

    def export_header(self):
        return [
            _("When"),
            _("Posting"),
            _("Kind"),
            _("Member number"),
            _("E-mail"),
            _("Points to spend"),
            _("Pending points"),
            _("Order"),
            _("By"),
            _("Reason"),
        ]

    def export_rows(self, postings):
        for posting in postings.iterator(chunk_size=2000):
            yield [
                posting.created_at,
                posting.key,
                posting.get_kind_display(),
                posting.member.number,
                posting.member.user.email,
                posting.available_change,
                posting.pending_change,
                posting.order_number,
                posting.actor_name,
                posting.reason,
            ]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["form"] = self.form
        return context


# Staff audit log -------------------------------------------------------------------

AUDIT_ACTIONS = {
    ADDITION: gettext_lazy("Created"),
    CHANGE: gettext_lazy("Changed"),
    DELETION: gettext_lazy("Deleted"),
}


class AuditLogView(ExportMixin, ListView):
    """Every staff change to the programme (Django's admin log entries of the
    plugin's records: who, when, what, before → after), newest first, filtered;
    ``?format=csv`` or ``xlsx`` downloads the filtered list, on record, for staff
    who may export. One query for the page, one for the count."""

    template_name = "oscar_loyalty/dashboard/audit_log.html"
    context_object_name = "entries"
    paginate_by = settings.OSCAR_DASHBOARD_ITEMS_PER_PAGE

    def loyalty_content_types(self):
        from django.apps import apps

        models = apps.get_app_config("oscar_loyalty").get_models()
        return ContentType.objects.get_for_models(*models).values()

    def get(self, request, *args, **kwargs):
        self.form = AuditLogSearchForm(
            request.GET, content_types=self.loyalty_content_types()
        )
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        entries = LogEntry.objects.filter(
            content_type__in=list(self.form.content_types.values())
        ).select_related("user", "content_type")
        return self.form.filter(entries).order_by("-action_time", "-id")

    export_kind = ExportRecord.Kind.AUDIT_LOG

    def export_header(self):
        return [
            _("When"),
            _("Staff user"),
            _("Action"),
            _("Record"),
            _("Object"),
            _("Object id"),
            _("Change"),
        ]

    def export_rows(self, entries):
        for entry in entries.iterator(chunk_size=2000):
            yield [
                entry.action_time,
                entry.user.get_username() if entry.user_id else "",
                str(AUDIT_ACTIONS.get(entry.action_flag, entry.action_flag)),
                record_label(entry),
                entry.object_repr,
                entry.object_id,
                entry.get_change_message(),
            ]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context.update(
            form=self.form,
            actions=AUDIT_ACTIONS,
            recent_exports=ExportRecord.objects.all()[:10],
            member_type=ContentType.objects.get_for_model(Member).pk,
        )
        for entry in context["entries"]:
            entry.record_label = record_label(entry)
        return context


def record_label(entry):
    model = entry.content_type.model_class()
    return (
        str(model._meta.verbose_name).capitalize()
        if model
        else entry.content_type.model
    )


# Win-back ------------------------------------------------------------------------


class WinBackRuleListView(ListView):
    """Win-back rules with their results: members picked, and how many came back
    within 30, 60 and 90 days, with the action and without it (the control
    group). One query for the rules and one for all their results."""

    template_name = "oscar_loyalty/dashboard/winbackrule_list.html"
    context_object_name = "rules"
    paginate_by = 50

    def get_queryset(self):
        return WinBackRule.objects.select_related("coupon_design").order_by(
            "-is_active", "-priority", "-threshold", "id"
        )

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        rules = list(context["rules"])
        results = winback.report(rules)
        for rule in rules:
            rule.results = results[rule.pk]
        user = self.request.user
        context.update(
            rules=rules,
            return_days=winback.RETURN_DAYS,
            newest_run=scoring.current_run(),
            can_add=user.has_perm("oscar_loyalty.add_winbackrule"),
            can_change=user.has_perm("oscar_loyalty.change_winbackrule"),
            can_view_picks=user.has_perm("oscar_loyalty.view_winback")
            and user.has_perm("oscar_loyalty.view_member"),
        )
        return context


class WinBackRuleFormMixin(AuditedFormMixin):
    model = WinBackRule
    form_class = WinBackRuleForm
    template_name = "oscar_loyalty/dashboard/winbackrule_form.html"
    audit_fields = WinBackRuleForm.Meta.fields
    audit_name = "win-back rule"
    created_message = gettext_lazy("Win-back rule “%(name)s” created.")
    saved_message = gettext_lazy("Win-back rule “%(name)s” saved.")

    def get_success_url(self):
        return reverse("loyalty_dashboard:loyalty-winbackrule-list")


class WinBackRuleCreateView(WinBackRuleFormMixin, CreateView):
    """A new win-back rule; it picks members from the next scoring run on."""


class WinBackRuleUpdateView(WinBackRuleFormMixin, UpdateView):
    """Edit a win-back rule; the admin log records each change, before → after.
    Members it picked keep what they got."""

    context_object_name = "rule"


class WinBackListView(ExportMixin, ListView):
    """The members a win-back rule picked, newest first: their churn risk, what
    they got (or the control group), and when they came back. Downloadable.
    One query for the page (member, customer, coupon by join; the return by a
    subquery) and one for the count."""

    template_name = "oscar_loyalty/dashboard/winback_list.html"
    context_object_name = "winbacks"
    paginate_by = 50
    export_kind = ExportRecord.Kind.WINBACK

    def dispatch(self, request, *args, **kwargs):
        self.rule = get_object_or_404(WinBackRule, pk=kwargs["pk"])
        return super().dispatch(request, *args, **kwargs)

    def get_queryset(self):
        return (
            WinBack.objects.filter(rule=self.rule)
            .select_related("member__user", "coupon__voucher")
            .annotate(returned=winback.returned_at())
            .order_by("-started_at", "-id")
        )

    def export_filters(self):
        return {"rule": self.rule.pk}

    def export_header(self):
        return [
            _("Member number"),
            _("E-mail"),
            _("Picked"),
            _("Churn risk"),
            _("Control group"),
            _("Coupon code"),
            _("Came back"),
        ]

    def export_rows(self, winbacks):
        for pick in winbacks.iterator(chunk_size=2000):
            yield [
                pick.member.number,
                pick.member.user.email,
                pick.started_at,
                pick.churn_risk,
                _("Yes") if pick.held_out else _("No"),
                pick.coupon.voucher.code if pick.coupon_id else "",
                pick.returned or "",
            ]

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        context["rule"] = self.rule
        return context


# Analytics -------------------------------------------------------------------------

#: The KPI tiles: (figure, label, how it is shown).
KPIS = (
    ("members", gettext_lazy("Members"), "number"),
    ("new_members", gettext_lazy("New members"), "number"),
    ("growth_rate", gettext_lazy("Member growth rate"), "rate"),
    ("active_rate", gettext_lazy("Active rate"), "rate"),
    ("retention_rate", gettext_lazy("Retention rate"), "rate"),
    ("repeat_rate", gettext_lazy("Repeat-purchase rate"), "rate"),
    ("contribution_multiple", gettext_lazy("Member contribution multiple"), "multiple"),
    ("member_aov", gettext_lazy("Member average order"), "money"),
    ("other_aov", gettext_lazy("Non-member average order"), "money"),
    ("issued", gettext_lazy("Points issued"), "number"),
    ("redeemed", gettext_lazy("Points redeemed"), "number"),
    ("expired", gettext_lazy("Points expired"), "number"),
)
FUNNEL_STEPS = {
    "registered": gettext_lazy("Joined"),
    "signed_in": gettext_lazy("Signed in again after their first day"),
    "profile": gettext_lazy("Completed the profile"),
    "bought": gettext_lazy("First order within 7 days"),
}


def shown(value, how):
    """A KPI as text: rates as percentages, multiples to two places."""
    if value is None:
        return "—"
    if how == "rate":
        return f"{value * 100:.1f} %"
    if how == "multiple":
        return f"{value:.2f}×"
    if how == "money":
        return currency(value)
    return f"{value:,}" if isinstance(value, int) else str(value)


def shown_change(change, how):
    if change is None:
        return "—"
    if how in ("rate",):
        return f"{change * 100:+.1f} " + str(_("pts"))
    if how == "multiple":
        return f"{change:+.2f}"
    return f"{change * 100:+.1f} %"


class AnalyticsView(TemplateView):
    """The programme's figures for a period against the period before, charts
    first and every chart's table under it; each table downloads as CSV or
    XLSX (on record). A fixed number of aggregate queries, whatever the number
    of members or orders."""

    template_name = "oscar_loyalty/dashboard/analytics.html"

    def get(self, request, *args, **kwargs):
        self.form = AnalyticsPeriodForm(request.GET or None)
        self.period = self.form.period()
        wanted = request.GET.get("table")
        file_format = request.GET.get("format")
        if wanted and file_format in ExportRecord.Format.values:
            if not request.user.has_perm("oscar_loyalty.export_data"):
                raise PermissionDenied
            tables = {table["id"]: table for table in self.tables()}
            if wanted not in tables:
                raise Http404("No such table")
            table = tables[wanted]
            return exports.export(
                request,
                kind=ExportRecord.Kind.ANALYTICS,
                file_format=file_format,
                header=[str(title) for title in table["header"]],
                # Numbers stay numbers; labels (lazy) become text.
                rows=iter(
                    [
                        [
                            cell if isinstance(cell, (int, Decimal)) else str(cell)
                            for cell in row
                        ]
                        for row in table["rows"]
                    ]
                ),
                count=len(table["rows"]),
                filters={
                    "table": wanted,
                    "from": self.period.first.isoformat(),
                    "until": self.period.last.isoformat(),
                },
            )
        return super().get(request, *args, **kwargs)

    def figures(self):
        if not hasattr(self, "_figures"):
            period, before = self.period, self.period.previous()

            def of(p):
                return {
                    **analytics.member_figures(p),
                    **analytics.order_figures(p),
                    **analytics.points_figures(p),
                }

            # Segments as the owner saw them at the period's end: the counts
            # from the last run's summary; the RFM grid and the member lists
            # from the last run that kept its members' rows (the same run
            # unless the period ended over 90 days ago).
            run = (
                ScoringRun.objects.filter(scored_at__lt=period.end)
                .order_by("-scored_at")
                .first()
            )
            rows_run = scoring.run_as_of(period.end)
            self._figures = {
                "kpis": analytics.compare(of(period), of(before)),
                "liability": analytics.liability_figures(period, point_value()),
                "run": run,
                "rows_run": rows_run,
                "segments": analytics.segment_counts(run),
                "rfm": analytics.rfm_grid(rows_run),
                "funnel": analytics.activation_funnel(period),
                "campaigns": analytics.campaign_results(period),
                "flow": analytics.points_flow(period),
                "cohorts": analytics.cohorts(period),
                "trend": analytics.segment_trend(period),
            }
        return self._figures

    def tables(self):
        """Every table of the page: id, title, header, rows (text or numbers)."""
        figures = self.figures()
        run = figures["run"]
        summary = run.summary if run is not None else {}
        segments = [[label, count] for _d, _c, label, count in figures["segments"]]
        kpi_rows = [
            [label, shown(now, how), shown(before, how), shown_change(change, how)]
            for key, label, how in KPIS
            for now, before, change in [figures["kpis"][key]]
        ]
        liability = figures["liability"]
        return [
            {
                "id": "kpis",
                "title": _("Figures for the period"),
                "header": [
                    _("Figure"),
                    _("This period"),
                    _("Period before"),
                    _("Change"),
                ],
                "rows": kpi_rows,
            },
            {
                "id": "liability",
                "title": _("Points liability"),
                "header": [_("Figure"), _("Value")],
                "rows": [
                    [_("Points members hold"), f"{liability['points']:,}"],
                    [_("Pending points"), f"{liability['pending']:,}"],
                    [_("Liability"), currency(liability["liability"])],
                    [
                        _("Breakage estimate (last 12 months)"),
                        shown(liability["breakage"], "rate"),
                    ],
                    [
                        _("Liability net of breakage"),
                        currency(liability["net_liability"]),
                    ],
                ],
            },
            {
                "id": "segments",
                "title": _("Members per segment"),
                "header": [_("Segment"), _("Members")],
                "rows": segments,
            },
            {
                "id": "trend",
                "title": _("Activity segments and high churn risk, run by run"),
                "header": [
                    _("Scoring run"),
                    *(
                        dict(ACTIVITY_SEGMENTS)[code]
                        for code in analytics.TREND_SEGMENTS
                    ),
                    _("Churn risk 70 or more"),
                ],
                "rows": [
                    [
                        timezone.localtime(row["run"]).strftime("%Y-%m-%d %H:%M"),
                        *(row[code] for code in analytics.TREND_SEGMENTS),
                        row["high_risk"],
                    ]
                    for row in figures["trend"]
                ],
            },
            {
                "id": "rfm",
                "title": _("RFM grid: members per recency and FM score"),
                "header": [_("Recency"), *(f"FM {fm}" for fm in range(1, 6))],
                "rows": [[row["recency"], *row["cells"]] for row in figures["rfm"]],
            },
            {
                "id": "churn",
                "title": _("Churn risk"),
                "header": [_("Churn risk"), _("Members")],
                "rows": [
                    [
                        "100" if tenth == 10 else f"{tenth * 10}–{tenth * 10 + 9}",
                        count,
                    ]
                    for tenth, count in enumerate(summary.get("churn", [0] * 11))
                ],
            },
            {
                "id": "points",
                "title": _("Points flow"),
                "header": [_("From"), _("Issued"), _("Redeemed"), _("Expired")],
                "rows": [
                    [
                        row["bucket"].isoformat(),
                        row["issued"],
                        row["redeemed"],
                        row["expired"],
                    ]
                    for row in figures["flow"]
                ],
            },
            {
                "id": "cohorts",
                "title": _(
                    "Cohort retention: share of each month's new members who "
                    "ordered, by month since joining"
                ),
                "header": [
                    _("Joined in"),
                    _("Members"),
                    *(
                        _("Month %(number)s") % {"number": k}
                        for k in range(analytics.COHORTS)
                    ),
                ],
                "rows": [
                    [
                        row["month"].strftime("%Y-%m"),
                        row["members"],
                        *(
                            "" if share is None else shown(share, "rate")
                            for share in row["shares"]
                        ),
                    ]
                    for row in figures["cohorts"]
                ],
            },
            {
                "id": "funnel",
                "title": _("Activation of the members who joined in the period"),
                "header": [_("Step"), _("Members"), _("Share")],
                "rows": [
                    [
                        FUNNEL_STEPS[step["step"]],
                        step["members"],
                        shown(step["share"], "rate"),
                    ]
                    for step in figures["funnel"]
                ],
            },
            {
                "id": "campaigns",
                "title": _("Campaign results in the period"),
                "header": [_("Campaign"), _("Orders"), _("Revenue"), _("Discount")],
                "rows": [
                    [
                        row["campaign"].name,
                        row["orders"],
                        currency(row["revenue"]),
                        currency(row["discount"]),
                    ]
                    for row in figures["campaigns"]
                ],
            },
        ]

    def charts(self):
        figures = self.figures()
        run = figures["run"]
        summary = run.summary if run is not None else {}
        found = {}
        if run is not None:
            found["segments"] = charts.horizontal_bar(
                _("Members per segment"),
                [label for _d, _c, label, _n in figures["segments"]],
                [count for _d, _c, _l, count in figures["segments"]],
                height=520,
            )
            found["churn"] = charts.bar(
                _("Churn risk"),
                [f"{tenth * 10}" for tenth in range(11)],
                [(_("Members"), summary.get("churn", [0] * 11))],
            )
        trend = figures["trend"]
        if len(trend) > 1:
            found["trend"] = charts.line(
                _("Activity segments and high churn risk, run by run"),
                [timezone.localtime(row["run"]).strftime("%m-%d") for row in trend],
                [
                    *(
                        (dict(ACTIVITY_SEGMENTS)[code], [row[code] for row in trend])
                        for code in analytics.TREND_SEGMENTS
                    ),
                    (_("Churn risk 70 or more"), [row["high_risk"] for row in trend]),
                ],
            )
        flow = figures["flow"]
        if flow:
            found["points"] = charts.line(
                _("Points flow"),
                [row["bucket"].isoformat() for row in flow],
                [
                    (_("Issued"), [row["issued"] for row in flow]),
                    (_("Redeemed"), [row["redeemed"] for row in flow]),
                    (_("Expired"), [row["expired"] for row in flow]),
                ],
            )
        funnel = figures["funnel"]
        found["funnel"] = charts.bar(
            _("Activation"),
            [FUNNEL_STEPS[step["step"]] for step in funnel],
            [(_("Members"), [step["members"] for step in funnel])],
        )
        return found

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        figures = self.figures()
        query = self.request.GET.copy()
        query.pop("table", None)
        query.pop("format", None)
        newest = scoring.current_run()
        as_of = ""
        if figures["rows_run"] is not None and figures["rows_run"] != newest:
            as_of = f"&as_of={self.period.last.isoformat()}"
        context.update(
            form=self.form,
            period=self.period,
            previous=self.period.previous(),
            run=figures["run"],
            rows_run=figures["rows_run"],
            tiles=[
                {
                    "key": key,
                    "label": label,
                    "now": shown(now, how),
                    "before": shown(before, how),
                    "change": shown_change(change, how),
                    "up": change is not None and change > 0,
                    "down": change is not None and change < 0,
                }
                for key, label, how in KPIS
                for now, before, change in [figures["kpis"][key]]
            ],
            tables={table["id"]: table for table in self.tables()},
            charts=self.charts(),
            # The member search's fields are named after the dimensions.
            segment_links=[
                {"label": label, "count": count, "query": f"{dimension}={code}{as_of}"}
                for dimension, code, label, count in figures["segments"]
            ],
            can_export=self.request.user.has_perm("oscar_loyalty.export_data"),
            can_view_members=self.request.user.has_perm("oscar_loyalty.view_member"),
            export_query=query.urlencode(),
        )
        return context
