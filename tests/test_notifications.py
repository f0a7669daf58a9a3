"""Messages to members: sent after the commit, only with consent, in the member's
language, through every channel (e-mail built in, the logging SMS example)."""

import logging

import pytest
from django.core import mail
from django.core.checks import run_checks
from django.db import transaction
from django.urls import reverse
from oscar.core.loading import get_model

from oscar_loyalty import consent, notifications
from oscar_loyalty.models import CouponDesign, Member
from oscar_loyalty.services import coupons, ledger, orders
from oscar_loyalty.services.members import get_or_create_member
from tests.factories import StaffFactory, UserFactory

pytestmark = pytest.mark.django_db

CommunicationEventType = get_model("communication", "CommunicationEventType")
PASSWORD = "a long Passw0rd for tests"


def member_with(*purposes, language="", phone="", email="mei@example.com"):
    member = get_or_create_member(UserFactory(email=email, first_name="Mei"))
    consent.record(member, dict.fromkeys(purposes, True), source="account")
    Member.objects.filter(pk=member.pk).update(language=language, phone=phone)
    member.refresh_from_db()
    return member


def test_every_event_has_an_editable_english_and_chinese_event_type():
    codes = set(
        CommunicationEventType.objects.filter(code__startswith="LOYALTY_").values_list(
            "code", flat=True
        )
    )
    for code in notifications.EVENTS.values():
        assert {code, f"{code}_ZH_HANS"} <= codes


def test_signing_up_with_e_mails_agreed_sends_the_welcome_after_the_commit(
    client, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        client.post(
            reverse("customer:register"),
            {
                "email": "new@example.com",
                "password1": PASSWORD,
                "password2": PASSWORD,
                "loyalty_consent": ["email"],
            },
        )

    assert callbacks  # queued for after the commit, not sent inside it
    welcome = [m for m in mail.outbox if "Welcome to" in m.subject]
    assert [m.to for m in welcome] == [["new@example.com"]]
    number = Member.objects.get(user__email="new@example.com").number
    assert number in welcome[0].body


def test_nothing_is_sent_without_consent(client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        client.post(
            reverse("customer:register"),
            {
                "email": "quiet@example.com",
                "password1": PASSWORD,
                "password2": PASSWORD,
            },
        )

    assert not [m for m in mail.outbox if "Welcome to" in m.subject]


def test_a_rolled_back_change_sends_nothing(django_capture_on_commit_callbacks):
    member = member_with("email")

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with transaction.atomic():
            notifications.notify("welcome", [member.pk])
            transaction.set_rollback(True)

    assert callbacks == [] and mail.outbox == []


def test_messages_go_in_the_members_language_with_the_owners_own_words():
    english = member_with("email", email="en@example.com")
    chinese = member_with("email", language="zh-hans", email="zh@example.com")

    notifications.send_event("welcome", [english.pk, chinese.pk])
    subjects = {m.to[0]: m.subject for m in mail.outbox}
    assert subjects["en@example.com"].startswith("Welcome to")
    assert subjects["zh@example.com"].startswith("欢迎加入")

    CommunicationEventType.objects.filter(code="LOYALTY_WELCOME_ZH_HANS").update(
        email_subject_template="梅店欢迎您，{{ member.number }}"
    )
    mail.outbox.clear()
    notifications.send_event("welcome", [english.pk, chinese.pk])
    subjects = {m.to[0]: m.subject for m in mail.outbox}
    assert subjects["zh@example.com"] == f"梅店欢迎您，{chinese.number}"
    assert subjects["en@example.com"].startswith("Welcome to")


def test_each_channel_sends_under_its_own_consent(settings, caplog):
    settings.OSCAR_LOYALTY_NOTIFICATION_CHANNELS = (
        "oscar_loyalty.notifications.EmailChannel",
        "oscar_loyalty.notifications.LoggingChannel",
    )
    texts = member_with("sms", phone="+8613800138001", email="sms@example.com")
    emails = member_with("email", phone="+8613800138002", email="mail@example.com")
    no_phone = member_with("sms", email="nophone@example.com")

    with caplog.at_level(logging.INFO, logger="oscar_loyalty.notifications"):
        sent = notifications.send_event("welcome", [texts.pk, emails.pk, no_phone.pk])

    assert sent == {"EmailChannel": 1, "LoggingChannel": 1}
    assert [m.to for m in mail.outbox] == [["mail@example.com"]]
    sms = [r.getMessage() for r in caplog.records if "SMS to" in r.getMessage()]
    assert len(sms) == 1 and sms[0].startswith("SMS to +8613800138001 (welcome)")


def test_a_failing_member_does_not_stop_the_others(monkeypatch):
    first = member_with("email", email="a@example.com")
    second = member_with("email", email="b@example.com")
    real = notifications.EmailChannel.send

    def flaky(self, member, messages, event):
        if member.pk == first.pk:
            raise RuntimeError("mail server said no")
        return real(self, member, messages, event)

    monkeypatch.setattr(notifications.EmailChannel, "send", flaky)
    sent = notifications.send_event("welcome", [first.pk, second.pk])

    assert sent["EmailChannel"] == 1
    assert [m.to for m in mail.outbox] == [["b@example.com"]]


def test_a_staff_coupon_is_announced_with_its_code_once(
    django_capture_on_commit_callbacks,
):
    member = member_with("email")
    design = CouponDesign.objects.create(
        name="Sorry gift",
        purpose=CouponDesign.Purpose.STAFF,
        benefit_type=CouponDesign.BenefitType.FIXED,
        value=10,
        valid_days=30,
    )
    staff = ledger.Actor.from_user(StaffFactory())

    with django_capture_on_commit_callbacks(execute=True):
        coupon = coupons.issue_by_staff(
            member=member, design=design, reason="late parcel", actor=staff, key="k1"
        )
    with django_capture_on_commit_callbacks(execute=True):
        coupons.issue_by_staff(  # the same form sent again
            member=member, design=design, reason="late parcel", actor=staff, key="k1"
        )

    assert len(mail.outbox) == 1
    assert "Sorry gift" in mail.outbox[0].subject
    assert coupon.voucher.code in mail.outbox[0].body


def test_confirmed_points_are_announced_with_how_many(
    django_capture_on_commit_callbacks,
):
    member = member_with("email")
    ledger.earn(member=member, key="earn:1", points=120, order_number="100001")

    with django_capture_on_commit_callbacks(execute=True):
        orders.confirm_order(order_number="100001")

    assert [m.subject for m in mail.outbox] == ["120 points are yours to spend"]
    assert "120 points in all" in mail.outbox[0].body


def test_a_channel_that_is_not_one_is_reported_by_the_checks(settings):
    settings.OSCAR_LOYALTY_NOTIFICATION_CHANNELS = (
        "oscar_loyalty.notifications.EmailChannel",
        "oscar_loyalty.models.Member",
        "no.such.Channel",
    )

    errors = [e for e in run_checks() if e.id == "oscar_loyalty.E018"]

    assert len(errors) == 2


def test_a_chinese_member_gets_the_text_message_in_chinese(settings, caplog):
    settings.OSCAR_LOYALTY_NOTIFICATION_CHANNELS = (
        "oscar_loyalty.notifications.LoggingChannel",
    )
    member = member_with("sms", language="zh-hans", phone="+8613800138001")

    with caplog.at_level(logging.INFO, logger="oscar_loyalty.notifications"):
        notifications.send_event("welcome", [member.pk])

    sms = [r.getMessage() for r in caplog.records if "SMS to" in r.getMessage()]
    assert len(sms) == 1 and "欢迎加入" in sms[0]


def test_nothing_is_queued_while_paused(django_capture_on_commit_callbacks):
    member = member_with("email")

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        with notifications.paused():
            notifications.notify("welcome", [member.pk])
        notifications.notify("welcome", [member.pk])

    assert len(callbacks) == 1 and len(mail.outbox) == 1


def move_up_to_gold_with_a_gift(capture):
    """A member who agreed to e-mails, put in Gold (which has a gift coupon) by
    staff, the messages sent; returns the coupon."""
    from oscar_loyalty.models import MemberCoupon, Tier
    from oscar_loyalty.services import tiers

    gold = Tier.objects.create(code="gold", name="Gold", rank=2, threshold=1000)
    CouponDesign.objects.create(
        name="Gold gift",
        purpose=CouponDesign.Purpose.TIER,
        benefit_type=CouponDesign.BenefitType.PERCENTAGE,
        value=10,
        tier=gold,
    )
    member = member_with("email")
    staff = ledger.Actor.from_user(StaffFactory())
    with capture(execute=True):
        tiers.set_tier(member=member, tier=gold, reason="VIP", actor=staff)
    return MemberCoupon.objects.get(member=member)


def test_moving_up_to_a_tier_with_a_gift_is_one_message_naming_the_coupon(
    django_capture_on_commit_callbacks,
):
    coupon = move_up_to_gold_with_a_gift(django_capture_on_commit_callbacks)

    assert len(mail.outbox) == 1, [m.subject for m in mail.outbox]
    assert "Gold" in mail.outbox[0].body
    assert "Gold gift" in mail.outbox[0].body
    assert coupon.voucher.code in mail.outbox[0].body
    html = mail.outbox[0].alternatives[0][0]
    assert f"<strong>{coupon.voucher.code}</strong>" in html


def test_a_shop_whose_own_tier_up_text_names_no_gifts_also_sends_the_coupon(
    django_capture_on_commit_callbacks,
):
    CommunicationEventType.objects.filter(code="LOYALTY_TIER_UP").update(
        email_body_template="Well done, {{ user.first_name }}: you are {{ new_tier }}."
    )

    code = move_up_to_gold_with_a_gift(django_capture_on_commit_callbacks).voucher.code

    assert len(mail.outbox) == 2
    assert "you are Gold" in mail.outbox[0].body
    assert code in mail.outbox[1].body and "Gold gift" in mail.outbox[1].subject
