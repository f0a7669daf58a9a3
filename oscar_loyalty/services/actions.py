"""Action rewards: points for something a member does (signing up, a daily
check-in, an approved review, a birthday, a completed profile, a referral). The
only writer of ``ActionAward`` rows.

An :class:`~oscar_loyalty.models.ActionRule` per action says how many points it
earns and how many times per period (a cap). Every award has an idempotency key
(``signup:<member>``, ``checkin:<member>:<local date>``, ``review:<review>``,
``birthday:<member>:<year>``, ``profile:<member>``, ``referral:<id>:referrer``…),
which is also the key of its ledger posting: the same event never pays twice,
whatever retries, replays or signals sent twice.

Caps are counted under the member's row lock (the ledger's discipline), so two
requests at once cannot go past one. A period is the day, ISO week (Monday to
Sunday), month or year in the shop's ``TIME_ZONE``; ``ever`` counts every award.
**Reversed awards still count against the cap**: a member who deletes a rewarded
review and posts another must not be paid again for it, nor be able to cycle
reviews to earn past the cap.

Points of an action are spendable at once (:func:`ledger.award`, a lot of source
``action``); taking them back (:func:`reverse_award`) goes through
:func:`ledger.reverse_lot`, which records a shortfall rather than ever making a
balance negative when the member already spent them.
"""

from datetime import datetime, time, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist
from django.db import transaction
from django.db.models import Count
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy as _
from oscar.core.loading import get_model

from ..exceptions import AlreadyCheckedIn
from ..models import ActionAward, ActionRule, Lot, Member
from . import ledger
from .coupons import birthday_members

Action = ActionRule.Action
Period = ActionRule.Period
ProductReview = get_model("reviews", "ProductReview")

#: Birthday members read (and checked against this year's awards) per query.
BIRTHDAY_CHUNK = 1000
#: User fields that, when the user model has one, must be filled for a complete
#: profile (Oscar's default user has none: the phone is then not asked for).
PHONE_FIELDS = ("phone_number", "phone")

REVIEW_REVERSED = _("Review withdrawn")
STORY_REVERSED = _("Story withdrawn")


def shop_text(message):
    """``message`` in the shop's language: reasons are stored, and read later by
    staff and members alike, whatever the language of the request that wrote it."""
    with translation.override(settings.LANGUAGE_CODE):
        return str(message)[:255]


# Periods and caps ---------------------------------------------------------------


def _midnight(day, zone):
    return timezone.make_aware(datetime.combine(day, time.min), zone)


def period_bounds(period, now):
    """[start, end) of the cap period holding ``now`` in the shop's time zone, or
    None for ``ever``."""
    zone = timezone.get_default_timezone()
    today = timezone.localtime(now, zone).date()
    if period == Period.DAY:
        start, end = today, today + timedelta(days=1)
    elif period == Period.WEEK:
        start = today - timedelta(days=today.weekday())  # ISO weeks start Monday
        end = start + timedelta(days=7)
    elif period == Period.MONTH:
        start = today.replace(day=1)
        end = (start + timedelta(days=32)).replace(day=1)
    elif period == Period.YEAR:
        start, end = (
            today.replace(month=1, day=1),
            today.replace(year=today.year + 1, month=1, day=1),
        )
    else:
        return None
    return _midnight(start, zone), _midnight(end, zone)


def counted_awards(rule, now):
    """The awards of ``rule``'s action that count against its cap at ``now``
    (reversed ones included, see the module's docstring)."""
    awards = ActionAward.objects.filter(action=rule.action)
    bounds = period_bounds(rule.cap_period, now)
    if bounds is not None:
        awards = awards.filter(created_at__gte=bounds[0], created_at__lt=bounds[1])
    return awards


def active_rule(action):
    return ActionRule.objects.filter(action=action, is_active=True).first()


# Awarding -----------------------------------------------------------------------


def _write_award(member, rule, *, key, object_id, now):
    """The ledger credit and its award row, for a member locked by the caller."""
    ledger.award(
        member=member,
        points=rule.points,
        key=key,
        reason=shop_text(rule.get_action_display()),
        now=now,
    )
    return ActionAward.objects.create(
        member_id=member.pk,
        action=rule.action,
        key=key,
        points=rule.points,
        object_id=object_id,
        created_at=now,
    )


@transaction.atomic
def reward_action(member, action, *, key, object_id=None, now=None):
    """Award ``action``'s points to ``member`` once per ``key``.

    Returns the :class:`ActionAward` (the existing one when ``key`` was awarded
    before, reversed or not), or None when the action has no active rule or the
    member reached its cap for the period.
    """
    now = now or timezone.now()
    member = ledger.lock_member(member.pk)
    existing = ActionAward.objects.filter(key=key).first()
    if existing is not None:
        return existing
    rule = active_rule(action)
    if rule is None:
        return None
    if rule.cap is not None:
        done = counted_awards(rule, now).filter(member=member).count()
        if done >= rule.cap:
            return None
    return _write_award(member, rule, key=key, object_id=object_id, now=now)


@transaction.atomic
def reverse_award(award, *, reason="", now=None):
    """Take an award's points back (its lot, then the member's other points if
    they were spent; what cannot be covered is recorded as a shortfall) and mark
    it reversed. Idempotent: a reversed award is returned as it is."""
    ledger.lock_member(award.member_id)
    award = ActionAward.objects.get(pk=award.pk)
    if award.reversed_at is not None:
        return award
    now = now or timezone.now()
    lot = Lot.objects.get(entries__posting__key=award.key)
    ledger.reverse_lot(
        lot=lot,
        points=award.points,
        key=f"reverse:action:{award.key}",
        reason=shop_text(reason) if reason else "",
        now=now,
    )
    award.reversed_at = now
    award.save(update_fields=["reversed_at"])
    return award


# Check-in -----------------------------------------------------------------------


def checkin_key(member_id, now):
    day = timezone.localtime(now, timezone.get_default_timezone()).date()
    return f"checkin:{member_id}:{day.isoformat()}"


@transaction.atomic
def check_in(member, now=None):
    """Today's check-in (today in the shop's time zone).

    Raises :class:`AlreadyCheckedIn` when the member checked in today already;
    returns the award, or None when check-ins earn nothing just now (no active
    rule, or the cap of the week or month is reached).
    """
    now = now or timezone.now()
    key = checkin_key(member.pk, now)
    member = ledger.lock_member(member.pk)
    if ActionAward.objects.filter(key=key).exists():
        raise AlreadyCheckedIn()
    return reward_action(member, Action.CHECKIN, key=key, now=now)


# Reviews ------------------------------------------------------------------------


def review_key(review_id):
    return f"review:{review_id}"


def reward_review(review, *, now=None):
    """Points for an approved Oscar product review by a signed-in customer with a
    member account; None for any other review. Once per review: approving it
    again after a withdrawal pays nothing (its award exists, reversed)."""
    if review.status != ProductReview.APPROVED or review.user_id is None:
        return None
    key = review_key(review.pk)
    # A plain read first: Oscar saves a review again on every vote.
    existing = ActionAward.objects.filter(key=key).first()
    if existing is not None:
        return existing
    member = Member.objects.filter(user_id=review.user_id).first()
    if member is None:
        return None
    return reward_action(member, Action.REVIEW, key=key, object_id=review.pk, now=now)


def reverse_review(review_id, *, now=None):
    """Take back the points of a review that was deleted or is no longer
    approved; None when it earned none. Idempotent."""
    award = ActionAward.objects.filter(key=review_key(review_id)).first()
    if award is None or award.reversed_at is not None:
        return award
    return reverse_award(award, reason=REVIEW_REVERSED, now=now)


# Community stories (published in Wagtail after moderation) --------------------


def story_key(story_id):
    return f"story:{story_id}"


def reward_story(*, user_id, story_id, now=None):
    """Points for a member's story or suggestion once editors published it; None
    for a story sent by no member. Once per story, however often it is
    published again."""
    if user_id is None:
        return None
    key = story_key(story_id)
    existing = ActionAward.objects.filter(key=key).first()
    if existing is not None:
        return existing
    member = Member.objects.filter(user_id=user_id).first()
    if member is None:
        return None
    return reward_action(member, Action.STORY, key=key, object_id=story_id, now=now)


def reverse_story(story_id, *, now=None):
    """Take back the points of a published story that was deleted; idempotent."""
    award = ActionAward.objects.filter(key=story_key(story_id)).first()
    if award is None or award.reversed_at is not None:
        return award
    return reverse_award(award, reason=STORY_REVERSED, now=now)


# Sign-up and profile ------------------------------------------------------------


def reward_signup(member, *, now=None):
    """The sign-up bonus, once per member."""
    return reward_action(member, Action.SIGNUP, key=f"signup:{member.pk}", now=now)


def _phone_field():
    User = get_user_model()
    for name in PHONE_FIELDS:
        try:
            return User._meta.get_field(name).name
        except FieldDoesNotExist:
            continue
    return None


def profile_complete(member):
    """First and last name and birthday set (and a phone, where the user model
    has a phone field; Oscar's default user has none)."""
    user = member.user
    if not (user.first_name or "").strip() or not (user.last_name or "").strip():
        return False
    if member.birth_month is None or member.birth_day is None:
        return False
    phone = _phone_field()
    return phone is None or bool(str(getattr(user, phone) or "").strip())


def reward_profile_completion(member, *, now=None):
    """Points for a completed profile, once ever; None while it is incomplete
    (or when it was rewarded before: the award is then returned)."""
    key = f"profile:{member.pk}"
    existing = ActionAward.objects.filter(key=key).first()
    if existing is not None:
        return existing
    if not profile_complete(member):
        return None
    return reward_action(member, Action.PROFILE, key=key, now=now)


# Birthdays ----------------------------------------------------------------------


def birthday_key(member_id, year):
    return f"birthday:{member_id}:{year}"


def reward_birthday_points(today=None, *, now=None):
    """Birthday points for the members celebrating ``today`` (and yesterday, in
    case yesterday's run was missed); once per member and year. Returns how many
    members were credited.

    Set-based: the candidates, the keys already awarded and the awards counted
    against the cap are read a chunk at a time; each member then costs only its
    ledger write and award row, in a transaction of its own.
    """
    now = now or timezone.now()
    today = today or timezone.localdate(now)
    rule = active_rule(Action.BIRTHDAY)
    if rule is None:
        return 0
    credited = 0
    for day in (today - timedelta(days=1), today):
        ids = list(birthday_members(day).order_by("pk").values_list("pk", flat=True))
        for start in range(0, len(ids), BIRTHDAY_CHUNK):
            chunk = ids[start : start + BIRTHDAY_CHUNK]
            for member_id in _birthday_due(rule, chunk, day.year, now):
                credited += _credit_birthday(member_id, rule, day.year, now)
    return credited


def _birthday_due(rule, member_ids, year, now):
    keys = {pk: birthday_key(pk, year) for pk in member_ids}
    done = set(
        ActionAward.objects.filter(key__in=keys.values()).values_list("key", flat=True)
    )
    capped = set()
    if rule.cap is not None:
        counts = (
            counted_awards(rule, now)
            .filter(member_id__in=member_ids)
            .values("member_id")
            .order_by()
            .annotate(n=Count("id"))
            .values_list("member_id", "n")
        )
        capped = {pk for pk, n in counts if n >= rule.cap}
    return [pk for pk in member_ids if keys[pk] not in done and pk not in capped]


def _credit_birthday(member_id, rule, year, now):
    """One member's birthday points: the ledger write (which locks the member and
    skips a key already posted) and the award row (skipped when a concurrent run
    wrote it first)."""
    key = birthday_key(member_id, year)
    with transaction.atomic():
        member = Member(pk=member_id)
        ledger.award(
            member=member,
            points=rule.points,
            key=key,
            reason=shop_text(rule.get_action_display()),
            now=now,
        )
        created = ActionAward.objects.bulk_create(
            [
                ActionAward(
                    member_id=member_id,
                    action=rule.action,
                    key=key,
                    points=rule.points,
                    object_id=year,
                    created_at=now,
                )
            ],
            ignore_conflicts=True,
        )
    return len(created)
