"""Members: the programme account of a customer."""

import re

from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.crypto import get_random_string

from ..models import Member

#: Member numbers: "M" and ten digits, random (never a customer count to guess).
NUMBER_DIGITS = 10


def new_member_number():
    return "M" + get_random_string(NUMBER_DIGITS, "0123456789")


def get_or_create_member(user, *, channel=Member.Channel.WEB):
    """The user's member account, created on first use (and on registration).

    Safe under concurrency: two requests creating the same member at once end with
    one row (the user is unique); a clash of random numbers is retried.
    """
    try:
        return user.loyalty_member
    except Member.DoesNotExist:
        pass
    for _attempt in range(5):
        try:
            with transaction.atomic():
                member = Member.objects.create(
                    user=user, number=new_member_number(), channel=channel
                )
                if join_entry_tier([member.pk]):
                    member.refresh_from_db(fields=["tier", "tier_since"])
                return member
        except IntegrityError:
            existing = Member.objects.filter(user=user).first()
            if existing is not None:
                return existing
    raise RuntimeError("could not allocate a unique member number")


def create_missing_members(users, *, channel=Member.Channel.BACKFILL, batch_size=1000):
    """Member accounts for every user in ``users`` that has none; returns how many.

    In bulk, a batch at a time; safe to run again (users with an account are left
    alone) and next to live sign-ups (conflicts are ignored and retried).
    """
    created = 0
    for _pass in range(3):
        missing = users.filter(loyalty_member__isnull=True).order_by("pk")
        ids = list(missing.values_list("pk", flat=True)[:batch_size])
        if not ids:
            return created
        while ids:
            Member.objects.bulk_create(
                [
                    Member(user_id=pk, number=new_member_number(), channel=channel)
                    for pk in ids
                ],
                ignore_conflicts=True,
            )
            created += Member.objects.filter(user_id__in=ids, channel=channel).count()
            join_entry_tier(
                Member.objects.filter(user_id__in=ids, tier__isnull=True).values_list(
                    "pk", flat=True
                )
            )
            last = ids[-1]
            ids = list(
                missing.filter(pk__gt=last).values_list("pk", flat=True)[:batch_size]
            )
    return created


def join_entry_tier(member_ids):
    """New members start in the entry tier (the lowest, if it asks for nothing).

    Starting is not a change of tier: no history row and no ``tier_changed``
    (``tier_since`` says when); members who joined before the shop had tiers are
    moved into one by the review, which records it.

    Returns how many members joined it.
    """
    from . import tiers

    entry = tiers.entry_tier()
    member_ids = list(member_ids)
    if entry is None or not member_ids:
        return 0
    members = Member.objects.filter(pk__in=member_ids, tier__isnull=True)
    joining = list(members.only("pk", "user_id"))
    joined = members.update(tier=entry, tier_since=timezone.now())
    tiers.sync_member_groups(joining)
    return joined


#: Spaces, dots, dashes, slashes and brackets people write inside phone numbers.
PHONE_SEPARATORS = re.compile(r"[\s().\-/]")


def normalise_phone(value):
    """``value`` as ``+`` and 8 to 15 digits, or ``ValueError``.

    Separators are dropped; ``00`` before the country code becomes ``+``. A number
    without its country code is refused: the same digits are different phones in
    different countries.
    """
    text = PHONE_SEPARATORS.sub("", str(value or "").strip())
    if text.startswith("00"):
        text = "+" + text[2:]
    if not re.fullmatch(r"\+[1-9]\d{7,14}", text):
        raise ValueError(text)
    return text


def remember_language(member, request, *, keep=False):
    """Messages go out in the language the member uses the shop in (the request's);
    with ``keep``, only when the member has none yet."""
    language = getattr(request, "LANGUAGE_CODE", "") or ""
    if not language or member.language == language or (keep and member.language):
        return
    Member.objects.filter(pk=member.pk).update(language=language)
    member.language = language
