"""Consent per purpose: given or withdrawn at sign-up and on the account page, each
change recorded with its time and source; nothing is chosen for the member."""

from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from oscar_loyalty import consent
from oscar_loyalty.models import ConsentChange, Member
from oscar_loyalty.services.members import get_or_create_member
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

PASSWORD = "a long Passw0rd for tests"
Purpose, Source = consent.Purpose, consent.Source


def input_tag(html, element_id):
    """The whole ``<input ...>`` tag with this id."""
    at = html.index(f'id="{element_id}"')
    start = html.rindex("<input", 0, at)
    return html[start : html.index(">", at) + 1]


def changes(member):
    return list(
        ConsentChange.objects.filter(member=member)
        .order_by("id")
        .values_list("purpose", "granted", "source")
    )


def test_recording_writes_only_real_changes_and_keeps_the_history():
    member = get_or_create_member(UserFactory())
    staff = UserFactory(is_staff=True)
    t0 = timezone.now() - timedelta(days=3)

    first = consent.record(
        member,
        {Purpose.EMAIL: True, Purpose.SMS: False},
        source=Source.ACCOUNT,
        actor=member.user,
        now=t0,
    )
    again = consent.record(member, {"email": True}, source=Source.ACCOUNT)
    withdrawn = consent.record(member, {"email": False}, source="staff", actor=staff)

    assert [row.purpose for row in first] == ["email"]  # SMS was already "no"
    assert again == []
    assert [(row.granted, row.actor_name) for row in withdrawn] == [
        (False, staff.get_username())
    ]
    member.refresh_from_db()
    assert member.consent_email is False and member.consent_sms is False
    assert changes(member) == [
        ("email", True, "account"),
        ("email", False, "staff"),
    ]
    assert consent.last_changes(member)["email"].source == "staff"
    assert ConsentChange.objects.get(source="account").created_at == t0


def test_an_unknown_purpose_or_source_is_refused_and_writes_nothing():
    member = get_or_create_member(UserFactory())

    with pytest.raises(ValueError):
        consent.record(member, {"email": True, "fax": True}, source=Source.ACCOUNT)
    with pytest.raises(ValueError):
        consent.record(member, {"email": True}, source="a rumour")

    member.refresh_from_db()
    assert member.consent_email is False
    assert not ConsentChange.objects.exists()


def test_consenting_members_are_those_who_said_yes_and_are_still_active():
    yes = get_or_create_member(UserFactory())
    no = get_or_create_member(UserFactory())
    gone = get_or_create_member(UserFactory(is_active=False))
    for member in (yes, gone):
        consent.record(member, {"profiling": True}, source=Source.ACCOUNT)

    assert list(consent.consenting("profiling")) == [yes]
    assert not consent.consenting("email").exists()
    assert consent.has_consent(yes, Purpose.PROFILING)
    assert not consent.has_consent(no, Purpose.PROFILING)


def test_the_sign_up_form_offers_each_purpose_unticked(client):
    for name in ("customer:register", "customer:login"):
        page = client.get(reverse(name)).content.decode()
        form = page[page.index('id="register_form"') :]
        form = form[: form.index("</form>")]
        for purpose in consent.SIGNUP_PURPOSES:
            tag = input_tag(form, f"loyalty-signup-{purpose.value}")
            assert "checked" not in tag, (name, purpose)


def test_what_a_shopper_ticks_at_sign_up_is_recorded_with_the_language(client):
    response = client.post(
        reverse("customer:register"),
        {
            "email": "mei@example.com",
            "password1": PASSWORD,
            "password2": PASSWORD,
            "loyalty_consent": ["email", "profiling", "not-a-purpose"],
        },
        HTTP_ACCEPT_LANGUAGE="zh-hans",
    )

    assert response.status_code == 302
    member = Member.objects.get(user__email="mei@example.com")
    assert (member.consent_email, member.consent_sms, member.consent_profiling) == (
        True,
        False,
        True,
    )
    assert member.expiry_reminders is False
    assert sorted(changes(member)) == [
        ("email", True, "signup"),
        ("profiling", True, "signup"),
    ]
    assert member.language == "zh-hans"


def test_signing_up_without_ticking_anything_gives_no_consent(client):
    client.post(
        reverse("customer:register"),
        {"email": "wei@example.com", "password1": PASSWORD, "password2": PASSWORD},
    )

    member = Member.objects.get(user__email="wei@example.com")
    assert not any(consent.current(member).values())
    assert changes(member) == []


def test_a_form_sent_back_with_errors_keeps_the_ticks(client):
    response = client.post(
        reverse("customer:register"),
        {
            "email": "not an address",
            "password1": PASSWORD,
            "password2": PASSWORD,
            "loyalty_consent": ["sms"],
        },
    )

    assert response.status_code == 200
    page = response.content.decode()
    assert "checked" in input_tag(page, "loyalty-signup-sms")
    assert "checked" not in input_tag(page, "loyalty-signup-email")
    assert not Member.objects.exists()


def test_the_account_page_changes_every_purpose_at_once_and_shows_when(client):
    user = UserFactory()
    member = get_or_create_member(user)
    consent.record(member, {"email": True, "sms": True}, source=Source.SIGNUP)
    client.force_login(user)

    response = client.post(
        reverse("loyalty:consent"), {"email": "on", "reminders": "on"}, follow=True
    )

    member.refresh_from_db()
    assert consent.current(member) == {
        Purpose.EMAIL: True,
        Purpose.SMS: False,
        Purpose.PROFILING: False,
        Purpose.REMINDERS: True,
    }
    assert sorted(changes(member)) == [
        ("email", True, "signup"),
        ("reminders", True, "account"),
        ("sms", False, "account"),
        ("sms", True, "signup"),
    ]
    page = response.content.decode()
    assert "Your choices are saved." in page
    assert "checked" in input_tag(page, "loyalty-consent-email")
    assert "checked" not in input_tag(page, "loyalty-consent-sms")
    assert 'id="loyalty-consent-sms-changed"' in page
    assert "withdrawn on" in page
    assert 'id="loyalty-consent-history"' in page


def test_the_consent_form_takes_only_a_signed_in_post_for_the_own_account(client):
    url = reverse("loyalty:consent")
    user, other = UserFactory(), UserFactory()
    other_member = get_or_create_member(other)

    assert client.post(url, {"email": "on"}).status_code == 302  # to log in
    client.force_login(user)
    assert client.get(url).status_code == 405
    client.post(url, {"email": "on", "member": other_member.pk})

    other_member.refresh_from_db()
    assert other_member.consent_email is False
    assert Member.objects.get(user=user).consent_email is True


def test_sending_the_same_choices_again_records_nothing(client):
    user = UserFactory()
    client.force_login(user)
    client.post(reverse("loyalty:consent"), {"sms": "on"})

    response = client.post(reverse("loyalty:consent"), {"sms": "on"}, follow=True)

    assert ConsentChange.objects.count() == 1
    assert "Nothing changed" in response.content.decode()


def test_the_reminder_switch_is_recorded_as_a_consent_change(client):
    user = UserFactory()
    client.force_login(user)

    client.post(reverse("loyalty:reminders"), {"expiry_reminders": "on"})
    client.post(reverse("loyalty:reminders"), {})

    member = Member.objects.get(user=user)
    assert member.expiry_reminders is False
    assert changes(member) == [
        ("reminders", True, "account"),
        ("reminders", False, "account"),
    ]


def test_staff_see_consents_and_find_members_by_phone_or_what_they_agreed_to(client):
    from tests.factories import StaffFactory
    from tests.test_dashboard_members import grant

    mei = get_or_create_member(UserFactory(email="mei@example.com"))
    wei = get_or_create_member(UserFactory(email="wei@example.com"))
    Member.objects.filter(pk=mei.pk).update(phone="+8613800138001")
    consent.record(mei, {"email": True}, source=Source.SIGNUP)
    consent.record(wei, {"sms": True}, source=Source.ACCOUNT)
    client.force_login(grant(StaffFactory(), "view_member"))
    members = reverse("loyalty_dashboard:loyalty-member-list")

    def found(query):
        response = client.get(members, query)
        return {m.user.email for m in response.context["members"]}

    assert found({"q": "+86 138-0013"}) == {"mei@example.com"}
    assert found({"q": "(138) 0013 8001"}) == {"mei@example.com"}
    assert found({"consent": "sms"}) == {"wei@example.com"}
    assert found({"consent": "email", "q": "wei"}) == set()
    page = client.get(
        reverse("loyalty_dashboard:loyalty-member-detail", args=[mei.pk])
    ).content.decode()
    assert 'id="loyalty-member-consents"' in page
    assert "+8613800138001" in page and "Sign-up form" in page


def test_a_member_sets_the_phone_text_messages_go_to(client):
    user = UserFactory()
    other = get_or_create_member(UserFactory())
    Member.objects.filter(pk=other.pk).update(phone="+8613800138009")
    client.force_login(user)
    url = reverse("loyalty:phone")

    saved = client.post(url, {"phone": "+86 138-0013-8001"}, follow=True)
    assert Member.objects.get(user=user).phone == "+8613800138001"
    assert "+8613800138001" in saved.content.decode()

    taken = client.post(url, {"phone": "+86 138 0013 8009"}, follow=True)
    local = client.post(url, {"phone": "13800138000"}, follow=True)
    assert "Another member has this phone number." in taken.content.decode()
    assert "country code" in local.content.decode()
    assert Member.objects.get(user=user).phone == "+8613800138001"

    client.post(url, {"phone": ""})
    assert Member.objects.get(user=user).phone == ""
    assert client.get(url).status_code == 405


def test_staff_record_a_consent_change_the_member_asked_for_by_phone(client):
    from django.contrib.admin.models import LogEntry

    from tests.factories import StaffFactory
    from tests.test_dashboard_members import grant

    member = get_or_create_member(UserFactory(email="mei@example.com"))
    consent.record(member, {"email": True, "sms": True}, source=Source.SIGNUP)
    staff = grant(StaffFactory(username="ada"), "view_member", "record_consent")
    viewer = grant(StaffFactory(), "view_member")
    url = reverse("loyalty_dashboard:loyalty-member-consent", args=[member.pk])
    detail = reverse("loyalty_dashboard:loyalty-member-detail", args=[member.pk])

    client.force_login(viewer)
    assert 'id="loyalty-consent-form"' not in client.get(detail).content.decode()
    assert client.post(url, {"email": "on", "reason": "x"}).status_code == 403
    client.force_login(staff)
    assert 'id="loyalty-consent-form"' in client.get(detail).content.decode()

    missing_reason = client.post(url, {"email": "on"})
    assert missing_reason.status_code == 400
    assert "Say how the member asked for this." in missing_reason.content.decode()
    response = client.post(
        url, {"email": "on", "reason": "phone call, stop text messages"}, follow=True
    )

    member.refresh_from_db()
    assert member.consent_email and not member.consent_sms
    change = ConsentChange.objects.filter(member=member).order_by("-id").first()
    assert (change.purpose, change.granted, change.source, change.actor_name) == (
        "sms",
        False,
        "staff",
        "ada",
    )
    assert "The member&#x27;s choices are recorded." in response.content.decode()
    assert LogEntry.objects.filter(
        change_message__contains="sms withdrawn (phone call, stop text messages)"
    ).exists()
