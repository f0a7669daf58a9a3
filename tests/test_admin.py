"""Django admin for support staff: every model of the programme is there to look
at (but member scores, keyed by run and member, which Django's admin can't
show; the dashboard does), and nothing can be added, changed or deleted, not
even by a superuser."""

import pytest
from django.contrib import admin
from django.test import Client
from django.urls import reverse

from oscar_loyalty.services import ledger
from oscar_loyalty.services.members import get_or_create_member
from tests.factories import StaffFactory, UserFactory

pytestmark = pytest.mark.django_db


def registered():
    return [
        (model, model_admin)
        for model, model_admin in admin.site._registry.items()
        if model._meta.app_label == "oscar_loyalty"
    ]


@pytest.fixture
def superuser_client():
    client = Client()
    client.force_login(UserFactory(is_staff=True, is_superuser=True))
    return client


@pytest.fixture
def member():
    member = get_or_create_member(UserFactory())
    ledger.adjust(
        member=member,
        points=500,
        reason="opening balance",
        actor=ledger.Actor.from_user(StaffFactory()),
    )
    return member


def test_every_model_support_staff_ask_about_is_registered():
    names = {model.__name__ for model, _ in registered()}

    assert {
        "Member", "Lot", "Posting", "Hold", "Tier", "TierChange", "OrderActivity",
        "EarnRule", "CouponDesign", "MemberCoupon", "Reward", "RewardRedemption",
        "Campaign", "CampaignOrder", "ActionRule", "ActionAward", "Referral",
        "ConsentChange",
    } <= names  # fmt: skip


def test_each_list_opens_and_searches_and_nothing_can_be_added(
    superuser_client, member
):
    for model, model_admin in registered():
        opts = model._meta
        changelist = reverse(f"admin:{opts.app_label}_{opts.model_name}_changelist")
        query = "?q=1" if model_admin.search_fields else ""

        assert superuser_client.get(changelist + query).status_code == 200, model
        add = reverse(f"admin:{opts.app_label}_{opts.model_name}_add")
        assert superuser_client.get(add).status_code == 403, model
        assert not model_admin.has_change_permission(None)
        assert not model_admin.has_delete_permission(None)


def test_the_ledger_cannot_be_edited_or_deleted_there(superuser_client, member):
    posting = member.postings.get()
    change = reverse("admin:oscar_loyalty_posting_change", args=[posting.pk])
    delete = reverse("admin:oscar_loyalty_posting_delete", args=[posting.pk])

    page = superuser_client.get(change)
    posted = superuser_client.post(change, {"reason": "changed", "kind": "adjust"})
    deleted = superuser_client.post(delete, {"post": "yes"})

    assert page.status_code == 200 and 'name="_save"' not in page.content.decode()
    assert posted.status_code == 403
    assert deleted.status_code == 403
    posting.refresh_from_db()
    assert posting.reason == "opening balance"
    member.refresh_from_db()
    assert member.available == 500
