"""Referrals: a member's code and link, attaching a new member to the member who
referred them, and rewarding both once the new member's first order is confirmed.
The only writer of ``Referral`` and ``MemberDevice`` rows (and of
``Member.referral_code``).

**Attaching** (:func:`attach_referral`, at sign-up). An unknown code, the new
member's own code, or a new member already referred write nothing. Otherwise a
:class:`Referral` is written, *refused* at once (with a reason staff can read)
when the sign-up is abuse on its face: from a browser the referrer signs in with
(the plugin's device cookie, :class:`MemberDevice`), a loop (the referrer joined
through the new member), a browser another referred account signed up or signs
in with (a repeat account), or the referrer's e-mail address.

**Rewarding** (:func:`reward_confirmed_referrals`, a periodic sweep). A pending
referral is decided when the new member's *first order* is confirmed: the
earliest order (by the time it was placed) that is not cancelled. An order that
was cancelled (or refunded in full, which the shop's reverse statuses also mark
cancelled) never counts, so the next order becomes the first; a first order
still waiting leaves the referral pending. Confirmed means confirmed for tiers
too: a confirm status, or the return window (``OSCAR_LOYALTY_CONFIRM_AFTER_DAYS``)
having passed. The abuse checks run again on everything known by then, and more:
the same e-mail (case-insensitively, ``+tags`` ignored), the same phone, or the
same address (line 1 and postcode, or line 1 and city without a postcode) among
the referrer's and the new member's saved addresses and orders' shipping
addresses, or a device both signed in with. A referral that passes earns both
members their action reward (``referrer``/``referred``, each under its own cap)
and is marked rewarded with the order's number; otherwise it is refused with the
reason. A reward is not taken back when that order is refunded later.
"""

import logging
import re
from dataclasses import dataclass, field
from datetime import timedelta
from urllib.parse import urlencode

from django.db import IntegrityError, transaction
from django.db.models import Case, F, OuterRef, Q, Subquery, Value, When
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import get_random_string
from django.utils.translation import gettext_lazy as _
from oscar.core.loading import get_model

from ..conf import loyalty_settings
from ..models import ActionRule, Member, MemberDevice, OrderActivity, Referral
from . import actions, ledger
from .coupons import CODE_ALPHABET

Order = get_model("order", "Order")
UserAddress = get_model("address", "UserAddress")

logger = logging.getLogger(__name__)

#: Referral codes: this many characters of the coupon codes' unambiguous alphabet.
CODE_LENGTH = 8
CODE_PATTERN = re.compile(rf"[{CODE_ALPHABET}]{{{CODE_LENGTH}}}")
#: The device cookie's values (``secrets.token_urlsafe(24)`` gives 32 characters).
DEVICE_PATTERN = re.compile(r"[A-Za-z0-9_-]{16,64}")
#: Pending referrals decided per batch of the sweep.
SWEEP_BATCH = 200

REFERRER_DEVICE = _("Signed up on a device the referrer uses.")
LOOP = _("The referrer joined through this member's referral.")
REPEAT_ACCOUNT = _("Another referred account uses this device.")
SAME_EMAIL = _("Same e-mail address as the referrer.")
SAME_PHONE = _("Same phone number as the referrer.")
SAME_ADDRESS = _("Same address as the referrer.")
SHARED_DEVICE = _("Signs in on a device the referrer uses.")


# Codes, links and devices -------------------------------------------------------


def normalise_code(value):
    """A referral code as typed or linked (any case, spaces around), or None when
    it cannot be one."""
    if not isinstance(value, str):
        return None
    code = value.strip().upper()
    return code if CODE_PATTERN.fullmatch(code) else None


def clean_device(value):
    """The device cookie's value, or "" when it is not one the plugin set."""
    if isinstance(value, str) and DEVICE_PATTERN.fullmatch(value):
        return value
    return ""


def referral_code(member):
    """The member's referral code, drawn (from ``secrets``) the first time."""
    if member.referral_code:
        return member.referral_code
    for _attempt in range(5):
        code = get_random_string(CODE_LENGTH, CODE_ALPHABET)
        try:
            with transaction.atomic():
                set_now = Member.objects.filter(
                    pk=member.pk, referral_code__isnull=True
                ).update(referral_code=code)
        except IntegrityError:  # another member has it: draw again
            continue
        if not set_now:  # a concurrent request gave the member one first
            code = Member.objects.values_list("referral_code", flat=True).get(
                pk=member.pk
            )
        member.referral_code = code
        return code
    raise RuntimeError("could not draw an unused referral code")


def referral_link(request, member):
    """The shop's home page with the member's code, as an absolute URL."""
    query = urlencode({"ref": referral_code(member)})
    return request.build_absolute_uri(f"{reverse('home')}?{query}")


def remember_device(member, device, *, now=None):
    """Note that ``member`` signed in with ``device`` (or when they last did);
    one statement. Values the plugin did not set are ignored (None)."""
    device = clean_device(device)
    if not device:
        return None
    now = now or timezone.now()
    MemberDevice.objects.bulk_create(
        [MemberDevice(member_id=member.pk, device=device, seen_at=now)],
        update_conflicts=True,
        unique_fields=["member", "device"],
        update_fields=["seen_at"],
    )
    return device


# Attaching at sign-up -----------------------------------------------------------


def attach_referral(new_member, code, *, device="", now=None):
    """Record that ``new_member`` joined through ``code``; the Referral (pending,
    or refused with a reason), or None when nothing is written (see the module's
    docstring)."""
    code = normalise_code(code)
    if code is None:
        return None
    referrer = Member.objects.filter(referral_code=code).select_related("user").first()
    if referrer is None or referrer.pk == new_member.pk:
        return None
    device = clean_device(device)
    now = now or timezone.now()
    with transaction.atomic():
        ledger.lock_member(new_member.pk)  # one referral per new member
        if Referral.objects.filter(referred_id=new_member.pk).exists():
            return None
        reason = _refusal_at_sign_up(referrer, new_member, device)
        return Referral.objects.create(
            referrer=referrer,
            referred_id=new_member.pk,
            device=device,
            created_at=now,
            status=Referral.Status.REFUSED if reason else Referral.Status.PENDING,
            reason=actions.shop_text(reason) if reason else "",
            decided_at=now if reason else None,
        )


def _refusal_at_sign_up(referrer, new_member, device):
    if device and MemberDevice.objects.filter(member=referrer, device=device).exists():
        return REFERRER_DEVICE
    if Referral.objects.filter(referrer_id=new_member.pk, referred=referrer).exists():
        return LOOP
    if device and _device_of_other_referred(device, new_member.pk):
        return REPEAT_ACCOUNT
    if same_email(referrer.user.email, new_member.user.email):
        return SAME_EMAIL
    return None


def _device_of_other_referred(device, member_id):
    others = Referral.objects.exclude(referred_id=member_id)
    return (
        others.filter(device=device).exists()
        or MemberDevice.objects.filter(
            device=device, member__in=others.values("referred_id")
        ).exists()
    )


# Who is who ---------------------------------------------------------------------


def normal_email(value):
    """An e-mail address to compare: case-folded, a ``+tag`` dropped."""
    local, at, domain = (value or "").strip().casefold().rpartition("@")
    if not at or not local:
        return ""
    return f"{local.split('+', 1)[0]}@{domain}"


def same_email(one, other):
    one = normal_email(one)
    return bool(one) and one == normal_email(other)


def normal_phone(value):
    return re.sub(r"\D", "", str(value or ""))


def _alnum(value):
    return re.sub(r"[\W_]+", "", str(value or "").casefold())


def normal_address(line1, postcode, city):
    """Line 1 with the postcode (or, without one, the city), letters and digits
    only; None when there is no line 1."""
    line1 = _alnum(line1)
    if not line1:
        return None
    return (line1, _alnum(postcode) or _alnum(city))


@dataclass
class Identity:
    """Phones, addresses and devices known for one member."""

    phones: set = field(default_factory=set)
    addresses: set = field(default_factory=set)
    devices: set = field(default_factory=set)

    def add_address(self, line1, postcode, city, phone):
        address = normal_address(line1, postcode, city)
        if address is not None:
            self.addresses.add(address)
        phone = normal_phone(phone)
        if phone:
            self.phones.add(phone)


def identities(members):
    """{member id: Identity} for ``members`` (with their ``user_id``), in three
    queries whatever their number."""
    by_user = {member.user_id: member.pk for member in members}
    found = {member.pk: Identity() for member in members}
    saved = UserAddress.objects.filter(user_id__in=by_user).values_list(
        "user_id", "line1", "postcode", "line4", "phone_number"
    )
    shipped = (
        Order.objects.filter(user_id__in=by_user, shipping_address__isnull=False)
        .values_list(
            "user_id",
            "shipping_address__line1",
            "shipping_address__postcode",
            "shipping_address__line4",
            "shipping_address__phone_number",
        )
        .distinct()
    )
    for rows in (saved, shipped):
        for user_id, line1, postcode, city, phone in rows:
            found[by_user[user_id]].add_address(line1, postcode, city, phone)
    devices = MemberDevice.objects.filter(member_id__in=found).values_list(
        "member_id", "device"
    )
    for member_id, device in devices:
        found[member_id].devices.add(device)
    return found


# Rewarding ----------------------------------------------------------------------


def _first_orders():
    """The new member's first order that is not cancelled, for a referral."""
    return OrderActivity.objects.filter(
        member_id=OuterRef("referred_id"), cancelled_at__isnull=True
    ).order_by("placed_at", "id")


def due_referrals(now):
    """Pending referrals whose new member's first order is confirmed at ``now``,
    annotated with its number (``first_order``)."""
    first = _first_orders()
    confirmed = Q(first_confirmed_at__isnull=False)
    after = loyalty_settings.CONFIRM_AFTER_DAYS
    if after is not None:
        confirmed |= Q(first_placed_at__lte=now - timedelta(days=after))
    return (
        Referral.objects.filter(status=Referral.Status.PENDING)
        .annotate(
            first_order=Subquery(first.values("order_number")[:1]),
            first_placed_at=Subquery(first.values("placed_at")[:1]),
            first_confirmed_at=Subquery(first.values("confirmed_at")[:1]),
        )
        .filter(confirmed, first_order__isnull=False)
    )


def reward_confirmed_referrals(now=None):
    """Decide every referral whose first order is confirmed; returns
    ``{"rewarded": n, "refused": n}``. Safe to run twice or at once: a referral
    is decided under the lock of both members, once. One that fails is logged and
    left pending for the next run; the others are still decided."""
    now = now or timezone.now()
    totals = {"rewarded": 0, "refused": 0}
    last = 0
    while True:
        batch = list(
            due_referrals(now)
            .filter(pk__gt=last)
            .select_related("referrer__user", "referred__user")
            .order_by("pk")[:SWEEP_BATCH]
        )
        if not batch:
            return totals
        last = batch[-1].pk
        reasons = refusals(batch)
        totals["refused"] += _refuse(
            [referral for referral in batch if referral.pk in reasons], reasons, now
        )
        for referral in batch:
            if referral.pk in reasons:
                continue
            try:
                totals["rewarded"] += _reward(referral, now)
            except Exception:
                logger.exception("Could not reward referral %s", referral.pk)


def refusals(batch):
    """{referral id: reason} for the referrals of ``batch`` that are abuse, from
    what is known now; a fixed number of queries for the batch."""
    members = [m for r in batch for m in (r.referrer, r.referred)]
    known = identities(members)
    # Every browser the new member used: the sign-up one and those signed in on.
    used = {
        r.pk: ({r.device} if r.device else set()) | known[r.referred_id].devices
        for r in batch
    }
    earlier = _earlier_referrals_by_device(set().union(*used.values()))
    reasons = {}
    for referral in batch:
        referrer = known[referral.referrer_id]
        referred = known[referral.referred_id]
        device = referral.device
        if device in referrer.devices:
            reason = REFERRER_DEVICE
        elif referred.devices & referrer.devices:
            reason = SHARED_DEVICE
        elif any(
            pk < referral.pk
            for used_device in used[referral.pk]
            for pk in earlier.get(used_device, ())
        ):
            reason = REPEAT_ACCOUNT
        elif same_email(referral.referrer.user.email, referral.referred.user.email):
            reason = SAME_EMAIL
        elif referred.phones & referrer.phones:
            reason = SAME_PHONE
        elif referred.addresses & referrer.addresses:
            reason = SAME_ADDRESS
        else:
            continue
        reasons[referral.pk] = reason
    return reasons


def _earlier_referrals_by_device(devices):
    """{device: ids of the referrals that signed up with it, or whose new member
    signs in with it} (two queries)."""
    found = {}
    if not devices:
        return found
    rows = [
        *Referral.objects.filter(device__in=devices).values_list("device", "pk"),
        *MemberDevice.objects.filter(
            device__in=devices, member__referred_by__isnull=False
        ).values_list("device", "member__referred_by__id"),
    ]
    for device, referral_id in rows:
        found.setdefault(device, set()).add(referral_id)
    return found


def _refuse(referrals, reasons, now):
    """Refuse ``referrals`` still pending, one statement per reason."""
    refused = 0
    by_reason = {}
    for referral in referrals:
        by_reason.setdefault(reasons[referral.pk], []).append(referral)
    for reason, group in by_reason.items():
        refused += Referral.objects.filter(
            pk__in=[r.pk for r in group], status=Referral.Status.PENDING
        ).update(
            status=Referral.Status.REFUSED,
            reason=actions.shop_text(reason),
            decided_at=now,
            order_number=Case(
                *[When(pk=r.pk, then=Value(r.first_order)) for r in group],
                default=F("order_number"),
            ),
        )
    return refused


@transaction.atomic
def _reward(referral, now):
    """Both members' rewards and the referral marked rewarded, under both locks;
    0 when another run decided it first."""
    ledger.lock_members([referral.referrer_id, referral.referred_id])
    status = (
        Referral.objects.select_for_update()
        .values_list("status", flat=True)
        .get(pk=referral.pk)
    )
    if status != Referral.Status.PENDING:
        return 0
    for role, member_id in (
        (ActionRule.Action.REFERRER, referral.referrer_id),
        (ActionRule.Action.REFERRED, referral.referred_id),
    ):
        actions.reward_action(
            Member(pk=member_id),
            role,
            key=f"referral:{referral.pk}:{role}",
            object_id=referral.pk,
            now=now,
        )
    Referral.objects.filter(pk=referral.pk).update(
        status=Referral.Status.REWARDED,
        order_number=referral.first_order,
        decided_at=now,
    )
    return 1
