"""Reminder e-mails before points expire: who gets them, how often, what they say.

Lots are earned and confirmed through the ledger at a fixed date, so they expire at
a known moment; each test then moves "now" towards it and runs the beat task (eager)
the way Celery beat would. E-mails are sent after the job's transaction commits, so
every run executes the on-commit callbacks it registered.
"""

import importlib
from datetime import datetime, timedelta

import pytest
from django.apps import apps as django_apps
from django.core import mail
from django.core.exceptions import ImproperlyConfigured
from django.db import transaction
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime
from django.utils.formats import date_format
from oscar.core.loading import get_model

from oscar_loyalty import jobs, notifications, tasks
from oscar_loyalty.models import Lot, Member
from oscar_loyalty.services import ledger
from oscar_loyalty.services.members import get_or_create_member
from tests.concurrency import run_in_processes
from tests.factories import StaffFactory, UserFactory

CommunicationEventType = get_model("communication", "CommunicationEventType")
Email = get_model("communication", "Email")

event_type_migration = importlib.import_module(
    "oscar_loyalty.migrations.0004_expiry_reminder_event_type"
)

#: When the test lots are confirmed; with 12 months and no rounding they expire
#: at EXPIRES.
CONFIRMED = datetime(2025, 3, 10, 12, 0, tzinfo=timezone.get_default_timezone())
EXPIRES = CONFIRMED.replace(year=2026)


@pytest.fixture(autouse=True)
def policy(settings):
    settings.OSCAR_LOYALTY_EXPIRY_MONTHS = 12
    settings.OSCAR_LOYALTY_EXPIRY_ROUNDING = "none"
    settings.OSCAR_LOYALTY_REMINDER_DAYS = (30, 15, 7)


@pytest.fixture(autouse=True)
def event_type(db):
    """The migration's row (made again when a transactional test flushed it)."""
    event_type_migration.create_event_type(django_apps, None)
    return CommunicationEventType.objects.get(code=notifications.EXPIRY_REMINDER)


@pytest.fixture
def remind(django_capture_on_commit_callbacks):
    """Run the beat task at ``now``, then what it left for after the commit."""

    def run(now):
        with django_capture_on_commit_callbacks(execute=True):
            return tasks.remind_expiring_points(now=now.isoformat())

    return run


def member(*, consents=True, **user_fields):
    account = get_or_create_member(UserFactory(**user_fields))
    Member.objects.filter(pk=account.pk).update(expiry_reminders=consents)
    account.refresh_from_db()
    return account


def active_lot(owner, points, *, key, confirmed_at=CONFIRMED):
    ledger.earn(member=owner, key=key, points=points, now=confirmed_at)
    lot = Lot.objects.get(entries__posting__key=key)
    ledger.confirm_lot(lot=lot, now=confirmed_at)
    lot.refresh_from_db()
    return lot


def local_date(moment):
    return timezone.localtime(moment, timezone.get_default_timezone()).date()


def line(points, moment):
    return f"{points} points expire on {date_format(local_date(moment), 'DATE_FORMAT')}"


pytestmark = pytest.mark.django_db


def test_only_members_who_agreed_are_reminded(remind, mailoutbox):
    agreed = member()
    declined = member(consents=False)
    inactive = member(is_active=False)
    for index, owner in enumerate([agreed, declined, inactive]):
        active_lot(owner, 100, key=f"earn-{index}")

    assert remind(EXPIRES - timedelta(days=29)) == 1

    assert [message.to for message in mailoutbox] == [[agreed.user.email]]
    assert Lot.objects.filter(member=declined).get().reminded_days is None
    assert Lot.objects.filter(member=inactive).get().reminded_days is None


def test_a_lot_is_reminded_once_per_window(remind, mailoutbox):
    owner = member()
    lot = active_lot(owner, 100, key="earn")
    now = EXPIRES - timedelta(days=29)

    remind(now)
    remind(now)  # a double beat
    remind(now + timedelta(days=5))  # the next days, still in the 30-day window

    assert len(mailoutbox) == 1
    lot.refresh_from_db()
    assert lot.reminded_days == 30


def test_reminders_follow_the_windows_30_15_7(remind, mailoutbox):
    owner = member()
    lot = active_lot(owner, 100, key="earn")
    told = []

    for days_left in range(40, 0, -1):  # a daily beat for forty days
        remind(EXPIRES - timedelta(days=days_left))
        lot.refresh_from_db()
        if len(mailoutbox) > len(told):
            told.append((days_left, lot.reminded_days))

    assert told == [(30, 30), (15, 15), (7, 7)]


def test_a_lot_first_seen_inside_7_days_gets_one_reminder(remind, mailoutbox):
    owner = member()
    lot = active_lot(owner, 100, key="earn")

    remind(EXPIRES - timedelta(days=5))
    remind(EXPIRES - timedelta(days=4))
    remind(EXPIRES - timedelta(days=1))

    assert len(mailoutbox) == 1
    lot.refresh_from_db()
    assert lot.reminded_days == 7


def test_a_member_who_agrees_later_hears_in_the_window_they_are_in(remind, mailoutbox):
    owner = member(consents=False)
    lot = active_lot(owner, 100, key="earn")
    remind(EXPIRES - timedelta(days=20))
    Member.objects.filter(pk=owner.pk).update(expiry_reminders=True)

    remind(EXPIRES - timedelta(days=19))
    remind(EXPIRES - timedelta(days=16))

    assert len(mailoutbox) == 1
    lot.refresh_from_db()
    assert lot.reminded_days == 30


def test_expired_spent_and_pending_lots_get_no_reminder(remind, mailoutbox):
    owner = member()
    expired = active_lot(owner, 50, key="expired", confirmed_at=CONFIRMED)
    spent = active_lot(
        owner, 70, key="spent", confirmed_at=CONFIRMED + timedelta(days=1)
    )
    ledger.earn(member=owner, key="pending", points=30, now=CONFIRMED)
    jobs.expire_lots(now=EXPIRES)
    ledger.redeem(member=owner, points=70, key="redeem")

    remind(EXPIRES)  # the spent lot expires in a day; nothing else is left

    assert mailoutbox == []
    expired.refresh_from_db()
    spent.refresh_from_db()
    assert (expired.status, spent.remaining) == (Lot.Status.EXPIRED, 0)
    assert not Lot.objects.filter(reminded_days__isnull=False).exists()


def test_a_lot_past_its_date_but_not_yet_expired_gets_no_reminder(remind, mailoutbox):
    owner = member()
    active_lot(owner, 50, key="earn")

    remind(EXPIRES + timedelta(minutes=1))

    assert mailoutbox == []


def test_one_email_lists_the_points_by_expiry_date(remind, mailoutbox):
    owner = member(first_name="Mei", last_name="Lin")
    soon = active_lot(owner, 40, key="a")
    active_lot(owner, 80, key="b", confirmed_at=CONFIRMED + timedelta(hours=1))
    later = active_lot(owner, 1, key="c", confirmed_at=CONFIRMED + timedelta(days=20))
    now = EXPIRES - timedelta(days=5)

    assert remind(now) == 1

    [message] = mailoutbox
    assert message.to == [owner.user.email]
    assert message.subject == "Your Members' Club points expire soon"
    assert "Hello Mei Lin," in message.body
    assert f" * {line(120, soon.expires_at)}" in message.body
    date = date_format(local_date(later.expires_at), "DATE_FORMAT")
    assert f" * 1 point expires on {date}" in message.body
    assert message.body.index(line(120, soon.expires_at)) < message.body.index(date)
    html, mimetype = message.alternatives[0]
    assert mimetype == "text/html"
    assert f"<li>{line(120, soon.expires_at)}</li>" in html
    reminded = dict(Lot.objects.values_list("points", "reminded_days"))
    assert reminded == {40: 7, 80: 7, 1: 30}
    # Oscar's dispatcher keeps it in the customer's e-mail history.
    history = Email.objects.get(user=owner.user)
    assert history.subject == message.subject


def test_members_in_different_chunks_each_get_one_email(remind, mailoutbox, settings):
    settings.OSCAR_LOYALTY_REMINDER_CHUNK = 1
    owners = [member() for _ in range(3)]
    for index, owner in enumerate(owners):
        active_lot(owner, 10, key=f"x{index}")
        active_lot(owner, 20, key=f"y{index}", confirmed_at=CONFIRMED)

    chunks = remind(EXPIRES - timedelta(days=10))

    assert chunks == 3
    assert sorted(message.to[0] for message in mailoutbox) == sorted(
        owner.user.email for owner in owners
    )
    assert all(f" * {line(30, EXPIRES)}" in m.body for m in mailoutbox)


def test_the_event_type_is_in_the_database_for_the_dashboard(event_type):
    assert event_type.name == "Loyalty: points expire soon"
    assert event_type.is_user_related()
    assert "{% blocktrans" in event_type.email_subject_template
    assert "expiring" in event_type.email_body_template
    assert event_type.email_body_html_template.startswith("{% extends")


def test_the_subject_the_owner_edited_is_used(remind, mailoutbox, event_type):
    event_type.email_subject_template = "Use your {{ total_points }} points"
    event_type.save()
    owner = member()
    active_lot(owner, 75, key="earn")

    remind(EXPIRES - timedelta(days=3))

    assert [message.subject for message in mailoutbox] == ["Use your 75 points"]


def test_the_owner_edits_and_previews_the_email_in_oscar_s_dashboard(
    client, remind, mailoutbox, event_type
):
    client.force_login(StaffFactory(is_superuser=True))
    listing = client.get(reverse("dashboard:comms-list"))
    assert "Loyalty: points expire soon" in listing.content.decode()
    url = reverse("dashboard:comms-update", kwargs={"slug": event_type.code})
    form = {
        "name": event_type.name,
        "email_subject_template": "{{ total_points }} points waiting for you",
        "email_body_template": event_type.email_body_template,
        "email_body_html_template": event_type.email_body_html_template,
    }

    # The preview has only the signed-in user and the site to show.
    preview = client.post(url, {**form, "show_preview": "1"})
    assert preview.status_code == 200
    assert "points expire soon" in preview.content.decode()
    assert client.post(url, form).status_code == 302
    active_lot(member(), 60, key="earn")
    remind(EXPIRES - timedelta(days=3))

    assert [message.subject for message in mailoutbox] == ["60 points waiting for you"]


def test_the_plugin_templates_are_used_without_a_row(remind, mailoutbox, event_type):
    event_type.delete()
    owner = member()
    active_lot(owner, 75, key="earn")

    remind(EXPIRES - timedelta(days=3))

    [message] = mailoutbox
    assert message.subject == "Your Members' Club points expire soon"
    assert line(75, EXPIRES) in message.body


def test_the_migration_keeps_an_edited_row_and_can_be_reversed(event_type):
    event_type.email_subject_template = "Edited"
    event_type.save()

    event_type_migration.create_event_type(django_apps, None)

    rows = CommunicationEventType.objects.filter(code=notifications.EXPIRY_REMINDER)
    assert list(rows.values_list("email_subject_template", flat=True)) == ["Edited"]
    event_type_migration.remove_event_type(django_apps, None)
    assert not CommunicationEventType.objects.filter(
        code=notifications.EXPIRY_REMINDER
    ).exists()


def test_a_member_without_an_address_does_not_stop_the_others(remind, mailoutbox):
    nowhere = member(email="")
    somewhere = member()
    active_lot(nowhere, 10, key="a")
    active_lot(somewhere, 10, key="b")

    remind(EXPIRES - timedelta(days=3))

    assert [message.to for message in mailoutbox] == [[somewhere.user.email]]
    # At most once: the lot stays marked, the next run does not retry it.
    assert set(Lot.objects.values_list("reminded_days", flat=True)) == {7}


def test_nothing_is_sent_or_marked_when_the_transaction_rolls_back(mailoutbox):
    owner = member()
    lot = active_lot(owner, 10, key="a")

    with pytest.raises(RuntimeError):
        with transaction.atomic():
            jobs.remind_expiring_lots(now=EXPIRES - timedelta(days=3))
            raise RuntimeError("the worker died before the commit")

    assert mailoutbox == []
    lot.refresh_from_db()
    assert lot.reminded_days is None


def test_the_update_repeats_the_guard_so_a_lot_is_not_marked_twice():
    lot = active_lot(member(), 10, key="a")
    now = EXPIRES - timedelta(days=3)
    chosen = list(
        jobs.reminders_due(now).values_list(
            "id", "member_id", "remaining", "expires_at"
        )
    )
    jobs.remind_expiring_lots(now=now)  # another worker, first

    # What a worker that chose the same rows meets where rows cannot be locked.
    with pytest.raises(jobs._RemindedElsewhere):
        jobs._mark_reminded(chosen, jobs._reminder_bands(now, [7, 15, 30]))
    assert [row[0] for row in chosen] == [lot.pk]


def test_no_windows_turn_reminders_off(remind, mailoutbox, settings):
    settings.OSCAR_LOYALTY_REMINDER_DAYS = ()
    active_lot(member(), 10, key="a")

    assert remind(EXPIRES - timedelta(days=3)) == 0
    assert mailoutbox == []


@pytest.mark.parametrize("bad", ["30", (30, 0), (7.5,), (True,), (40_000,)])
def test_a_bad_reminder_setting_is_refused_clearly(settings, mailoutbox, bad):
    settings.OSCAR_LOYALTY_REMINDER_DAYS = bad
    active_lot(member(), 10, key="a")

    with pytest.raises(ImproperlyConfigured, match="OSCAR_LOYALTY_REMINDER_DAYS"):
        tasks.remind_expiring_points(now=(EXPIRES - timedelta(days=3)).isoformat())

    assert mailoutbox == []
    assert Lot.objects.get().reminded_days is None


def test_the_owner_s_own_windows_are_used(remind, mailoutbox, settings):
    settings.OSCAR_LOYALTY_REMINDER_DAYS = [3, 60]
    lot = active_lot(member(), 10, key="a")

    remind(EXPIRES - timedelta(days=45))
    remind(EXPIRES - timedelta(days=7))
    remind(EXPIRES - timedelta(days=2))

    assert len(mailoutbox) == 2
    lot.refresh_from_db()
    assert lot.reminded_days == 3


# Several workers at once (PostgreSQL) -----------------------------------------------


def remind_in_this_process(now):
    """A worker's run of the whole member range; the addresses it e-mailed."""
    mail.outbox = []
    jobs.remind_expiring_lots(now=parse_datetime(now))
    return [message.to[0] for message in mail.outbox]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_workers_running_at_once_send_each_reminder_once():
    owners = [member() for _ in range(30)]
    for index, owner in enumerate(owners):
        active_lot(owner, 10, key=f"a{index}")
        active_lot(owner, 20, key=f"b{index}", confirmed_at=CONFIRMED)
    now = (EXPIRES - timedelta(days=3)).isoformat()

    outcomes = run_in_processes(remind_in_this_process, 3, args=(now,))

    assert [outcome.error for outcome in outcomes] == [None] * 3
    sent = [address for outcome in outcomes for address in outcome.value]
    assert sorted(sent) == sorted(owner.user.email for owner in owners)
    assert set(Lot.objects.values_list("reminded_days", flat=True)) == {7}
