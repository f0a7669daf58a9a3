"""Issuing member coupons: the only writer of ``MemberCoupon`` rows.

A coupon is an Oscar voucher of its design's offer with a code from ``secrets``,
bound to one member. Every issue has an idempotency key (``welcome:<design>:<m>``,
``birthday:<design>:<m>:<year>``, ``tier:<design>:<m>``, ``staff:<uuid>``…): issuing
again with a key already used returns the existing coupon (one at a time) or
skips the member (in bulk). One member's coupons are issued under a lock on the
member row, so two workers issuing the same key end with one coupon.
"""

import calendar
import uuid
from datetime import date, datetime, time, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.crypto import get_random_string
from oscar.core.loading import get_model

from ..bulk import AnyOf
from ..conf import loyalty_settings
from ..exceptions import CouponReasonRequired
from ..models import CouponDesign, Member, MemberCoupon
from ..notifications import notify
from .ledger import SYSTEM, lock_member

Voucher = get_model("voucher", "Voucher")
VoucherOffers = Voucher.offers.through

#: Codes use no look-alike characters: no 0/O, no 1/I/L.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
#: Members per transaction when issuing in bulk.
BULK_CHUNK = 1000


def new_code(length=None):
    length = length or loyalty_settings.COUPON_CODE_LENGTH
    return get_random_string(length, CODE_ALPHABET)  # secrets.choice underneath


def valid_until(design, now):
    """The end of the coupon's last day in the shop's time zone."""
    shop_zone = timezone.get_default_timezone()
    last_day = timezone.localtime(now, shop_zone).date() + timedelta(
        days=design.valid_days
    )
    return timezone.make_aware(datetime.combine(last_day, time.max), shop_zone)


def _voucher(design, code, now):
    return Voucher(
        name=f"{design.name} {code}"[:128],
        code=code,
        usage=Voucher.MULTI_USE if design.multi_use else Voucher.SINGLE_USE,
        start_datetime=now,
        end_datetime=valid_until(design, now),
    )


def _design_offer(design):
    if design.offer_id is None:
        from ..coupons import sync_design_offer

        sync_design_offer(design)
    return design.offer_id


@transaction.atomic
def issue_coupon(
    *,
    member,
    design,
    key,
    actor=SYSTEM,
    reason="",
    points_cost=0,
    now=None,
    event=None,
    extra=None,
):
    """Issue one coupon of ``design`` to ``member`` (or return the one ``key``
    already issued). With ``event``, the member is told once it commits (only
    when the coupon is new)."""
    member = lock_member(member.pk)
    existing = MemberCoupon.objects.filter(key=key).select_related("voucher").first()
    if existing is not None:
        return existing
    now = now or timezone.now()
    offer_id = _design_offer(design)
    for _attempt in range(5):
        try:
            with transaction.atomic():
                voucher = _voucher(design, new_code(), now)
                voucher.save()
                break
        except IntegrityError:  # a code (or name) already taken: draw again
            continue
    else:
        raise RuntimeError("could not draw an unused coupon code")
    VoucherOffers.objects.create(voucher_id=voucher.pk, conditionaloffer_id=offer_id)
    coupon = MemberCoupon.objects.create(
        voucher=voucher,
        member=member,
        design=design,
        key=key,
        issued_at=now,
        reason=reason[:255],
        actor_id=actor.id,
        actor_name=actor.name[:255],
        points_cost=points_cost,
    )
    if event:
        notify(
            event, [member.pk], {member.pk: {"coupon_id": coupon.pk, **(extra or {})}}
        )
    return coupon


def issue_by_staff(*, member, design, reason, actor, key=None, now=None):
    """A coupon staff give a member by hand (win-back, apology…); reason required.

    ``key`` (the form's token) makes a double submission one coupon."""
    reason = (reason or "").strip()
    if not reason:
        raise CouponReasonRequired()
    return issue_coupon(
        member=member,
        design=design,
        key=f"staff:{key or uuid.uuid4()}",
        actor=actor,
        reason=reason,
        now=now,
        event="coupon_issued",
    )


def issue_to_members(
    design,
    member_ids,
    key_for,
    *,
    reason="",
    campaign=None,
    now=None,
    event="coupon_issued",
    collect=None,
):
    """Issue ``design`` to each member whose key (``key_for(member_id)``) is unused.

    ``collect`` (a dict), when given, receives ``{member id: [coupon id]}`` of
    the coupons issued (a chunk redone after a code clash counts once).

    Set-based, in transactions of :data:`BULK_CHUNK` members: the chunk's members
    are locked, the keys already used skipped, and the vouchers, their offer links
    and the coupons inserted with one statement each. Returns how many were issued.
    The members are told (``event``; None: not) once each chunk commits, in one
    task per chunk.
    """
    now = now or timezone.now()
    offer_id = _design_offer(design)
    ids = sorted(set(member_ids))
    issued = 0
    for start in range(0, len(ids), BULK_CHUNK):
        chunk = ids[start : start + BULK_CHUNK]
        for _attempt in range(5):
            try:
                found = {}
                issued += _issue_chunk(
                    design,
                    offer_id,
                    chunk,
                    key_for,
                    reason,
                    campaign,
                    now,
                    event,
                    found,
                )
                if collect is not None:
                    for member_id, coupon_ids in found.items():
                        collect.setdefault(member_id, []).extend(coupon_ids)
                break
            except IntegrityError:  # a drawn code clashed: the chunk is redone
                continue
        else:
            raise RuntimeError("could not draw unused coupon codes")
    return issued


@transaction.atomic
def _issue_chunk(
    design, offer_id, member_ids, key_for, reason, campaign, now, event, collect=None
):
    locked = list(
        Member.objects.select_for_update()
        .filter(pk__in=member_ids)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    keys = {pk: key_for(pk) for pk in locked}
    taken = set(
        MemberCoupon.objects.filter(key__in=list(keys.values())).values_list(
            "key", flat=True
        )
    )
    todo = [pk for pk in locked if keys[pk] not in taken]
    if not todo:
        return 0
    vouchers = Voucher.objects.bulk_create(
        [_voucher(design, new_code(), now) for _ in todo]
    )
    VoucherOffers.objects.bulk_create(
        [
            VoucherOffers(voucher_id=voucher.pk, conditionaloffer_id=offer_id)
            for voucher in vouchers
        ]
    )
    issued = MemberCoupon.objects.bulk_create(
        [
            MemberCoupon(
                voucher_id=voucher.pk,
                member_id=pk,
                design=design,
                key=keys[pk],
                issued_at=now,
                reason=reason[:255],
                campaign=campaign,
            )
            for pk, voucher in zip(todo, vouchers, strict=True)
        ]
    )
    if event:
        notify(
            event,
            todo,
            {coupon.member_id: {"coupon_id": coupon.pk} for coupon in issued},
        )
    if collect is not None:
        for coupon in issued:
            collect.setdefault(coupon.member_id, []).append(coupon.pk)
    return len(todo)


def _active(purpose):
    return CouponDesign.objects.filter(purpose=purpose, is_active=True).select_related(
        "tier"
    )


def issue_welcome_coupons(member, *, now=None):
    """The welcome coupons of a new member (each active welcome design once)."""
    return [
        issue_coupon(
            member=member,
            design=design,
            key=f"welcome:{design.pk}:{member.pk}",
            now=now,
        )
        for design in _active(CouponDesign.Purpose.WELCOME)
    ]


def issue_tier_coupons(member_ids, *, design_id=None, now=None, event="coupon_issued"):
    """Tier-exclusive coupons for members now in a design's tier or above, once per
    member and design (reaching the tier again later gives none); only design
    ``design_id`` when given. Returns ``{member id: [coupon id]}`` of the coupons
    issued now; with ``event`` None the members are not told (the caller names
    the coupons in its own message)."""
    now = now or timezone.now()
    member_ids = list(member_ids)
    designs = list(_active(CouponDesign.Purpose.TIER).select_related("tier"))
    if design_id is not None:
        designs = [design for design in designs if design.pk == design_id]
    issued = {}
    for design in designs:
        eligible = Member.objects.filter(
            AnyOf("pk", member_ids), tier__rank__gte=design.tier.rank
        ).values_list("pk", flat=True)
        issue_to_members(
            design,
            eligible,
            lambda pk, design=design: f"tier:{design.pk}:{pk}",
            now=now,
            event=event,
            collect=issued,
        )
    return issued


def birthdays_on(day):
    """Q-able (month, day) pairs celebrated on ``day``: 29 February birthdays
    are celebrated on 28 February in other years."""
    pairs = [(day.month, day.day)]
    if day.month == 2 and day.day == 28 and not calendar.isleap(day.year):
        pairs.append((2, 29))
    return pairs


def birthday_members(day):
    """Members celebrating on ``day``."""
    from django.db.models import Q

    condition = Q()
    for month, day_of_month in birthdays_on(day):
        condition |= Q(birth_month=month, birth_day=day_of_month)
    return Member.objects.filter(condition)


def issue_birthday_coupons(*, today=None, now=None):
    """Each active birthday design to the members whose birthday is
    ``OSCAR_LOYALTY_BIRTHDAY_DAYS_AHEAD`` days from ``today`` (and the day before,
    in case yesterday's run was missed); once per member, design and year."""
    now = now or timezone.now()
    today = today or timezone.localdate(now)
    ahead = loyalty_settings.BIRTHDAY_DAYS_AHEAD
    issued = 0
    for offset in (ahead - 1, ahead):
        day = today + timedelta(days=offset)
        member_ids = birthday_members(day).values_list("pk", flat=True)
        for design in _active(CouponDesign.Purpose.BIRTHDAY):
            issued += issue_to_members(
                design,
                member_ids,
                lambda pk, design=design, year=day.year: (
                    f"birthday:{design.pk}:{pk}:{year}"
                ),
                now=now,
                event="birthday",
            )
    return issued


def next_birthday(member, today):
    """The date of the member's next birthday on or after ``today``, or None."""
    if not member.birth_month:
        return None
    for year in (today.year, today.year + 1):
        last = calendar.monthrange(year, member.birth_month)[1]
        day = date(year, member.birth_month, min(member.birth_day, last))
        if day >= today:
            return day
    return None
