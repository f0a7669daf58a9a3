"""Consent per purpose: what a member agreed to, and the record of every change.

The current answers are fields on ``Member`` so that jobs filter on them in SQL
(``consenting("email")``); each change adds a ``ConsentChange`` row in the same
transaction, with the time, the source (sign-up form, account page, staff, import)
and who made it. Nothing is sent and no profiling runs for a purpose without
consent: every sender and every profiling job starts from :func:`consenting`.
"""

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Max, Subquery
from django.utils import timezone

from .models import ConsentChange, Member

Purpose = ConsentChange.Purpose
Source = ConsentChange.Source

#: The ``Member`` field holding the current answer for each purpose.
FIELDS = {
    Purpose.EMAIL: "consent_email",
    Purpose.SMS: "consent_sms",
    Purpose.PROFILING: "consent_profiling",
    Purpose.REMINDERS: "expiry_reminders",
}

#: Purposes offered on the sign-up form (reminders are offered on the account page,
#: next to the points that expire).
SIGNUP_PURPOSES = (Purpose.EMAIL, Purpose.SMS, Purpose.PROFILING)


def consenting(purpose, queryset=None):
    """Active members who agreed to ``purpose``."""
    queryset = Member.objects.all() if queryset is None else queryset
    queryset = queryset.filter(**{FIELDS[Purpose(purpose)]: True})
    user_fields = {field.name for field in get_user_model()._meta.get_fields()}
    if "is_active" in user_fields:  # a custom user model may not have the field
        queryset = queryset.filter(user__is_active=True)
    return queryset


def has_consent(member, purpose):
    return bool(getattr(member, FIELDS[Purpose(purpose)]))


def current(member):
    """``{purpose: bool}`` for every purpose, in the order of ``Purpose``."""
    return {purpose: has_consent(member, purpose) for purpose in Purpose}


def record(member, answers, *, source, actor=None, now=None):
    """Set the member's consent to the purposes in ``answers`` (``{purpose: bool}``).

    Only real changes are written: answering what the member already answered adds
    no row. The member row is locked, so two forms sent at once leave one answer
    and a history that matches it. Returns the ``ConsentChange`` rows added.
    """
    answers = {Purpose(purpose): bool(value) for purpose, value in answers.items()}
    source = Source(source)
    now = now or timezone.now()
    actor_id = getattr(actor, "pk", None)
    actor_name = actor.get_username() if actor_id else ""
    with transaction.atomic():
        locked = (
            Member.objects.select_for_update().only(*FIELDS.values()).get(pk=member.pk)
        )
        changed = {
            purpose: value
            for purpose, value in answers.items()
            if has_consent(locked, purpose) != value
        }
        if not changed:
            return []
        Member.objects.filter(pk=member.pk).update(
            **{FIELDS[purpose]: value for purpose, value in changed.items()}
        )
        if changed.get(Purpose.PROFILING) is False:
            # No profile is kept of a member who withdrew: their segments and
            # scoring history go now, not at the next scoring run.
            from .scoring import forget

            forget(Member.objects.filter(pk=member.pk))
        rows = ConsentChange.objects.bulk_create(
            ConsentChange(
                member_id=member.pk,
                purpose=purpose,
                granted=value,
                source=source,
                actor_id=actor_id,
                actor_name=actor_name,
                created_at=now,
            )
            for purpose, value in changed.items()
        )
    for purpose, value in changed.items():
        setattr(member, FIELDS[purpose], value)
    return rows


def last_changes(member):
    """``{purpose: ConsentChange}``: the latest change of each purpose."""
    latest = (
        ConsentChange.objects.filter(member=member)
        .values("purpose")
        .annotate(last=Max("id"))
        .values("last")
    )
    return {
        change.purpose: change
        for change in ConsentChange.objects.filter(pk__in=Subquery(latest))
    }


def answers(member):
    """Each purpose with its label, the member's answer and its last change (one
    query): what the Loyalty tab and the member's dashboard page show."""
    last = last_changes(member)
    return [
        {
            "code": purpose.value,
            "label": purpose.label,
            "granted": has_consent(member, purpose),
            "changed": last.get(purpose.value),
        }
        for purpose in Purpose
    ]


def history(member, limit=50):
    return list(member.consent_changes.order_by("-created_at", "-id")[:limit])
