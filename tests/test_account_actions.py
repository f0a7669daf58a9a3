"""The Loyalty tab's daily check-in and "Invite friends" panel, through the real
views, the action and referral services and the ledger."""

from datetime import timedelta

import pytest
from django.contrib.messages import get_messages
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from oscar_loyalty.audit import find_drift
from oscar_loyalty.models import ActionAward, ActionRule, Member, Posting, Referral
from oscar_loyalty.services import actions
from oscar_loyalty.services.members import get_or_create_member
from tests.factories import UserFactory

pytestmark = pytest.mark.django_db

ACCOUNT = "loyalty:account"
CHECKIN = "loyalty:checkin"
Action = ActionRule.Action


@pytest.fixture
def checkin_rule():
    return ActionRule.objects.create(action=Action.CHECKIN, points=5)


def new_member():
    return get_or_create_member(UserFactory())


def said(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


def available(member):
    return Member.objects.get(pk=member.pk).available


def check_in(client):
    """Press the button; the message it left (the tab shows, and so clears, it)."""
    response = client.post(reverse(CHECKIN))
    assert response.status_code == 302
    assert response.url == reverse(ACCOUNT) + "#loyalty-checkin"
    messages = said(response)
    client.get(reverse(ACCOUNT))
    return messages


def checkin_panel(client):
    page = client.get(reverse(ACCOUNT)).content.decode()
    if 'id="loyalty-checkin"' not in page:
        return None
    return page.split('id="loyalty-checkin"')[1].split("</div>")[0]


# Daily check-in ---------------------------------------------------------------------


def test_the_button_says_what_a_check_in_earns(client, checkin_rule):
    client.force_login(new_member().user)

    shown = checkin_panel(client)

    assert shown is not None
    assert "Check in today (+5 points)" in shown
    assert f'action="{reverse(CHECKIN)}"' in shown
    assert 'method="post"' in shown
    assert "csrfmiddlewaretoken" in shown
    assert "Checked in today" not in shown


@pytest.mark.parametrize("rule", [None, {"is_active": False}])
def test_no_button_while_check_ins_earn_nothing(client, rule):
    if rule is not None:
        ActionRule.objects.create(action=Action.CHECKIN, points=5, **rule)
    ActionRule.objects.create(action=Action.REVIEW, points=50)
    client.force_login(new_member().user)

    assert checkin_panel(client) is None
    assert "Check in today" not in client.get(reverse(ACCOUNT)).content.decode()


def test_checking_in_adds_the_points_once_a_day(client, checkin_rule):
    member = new_member()
    client.force_login(member.user)

    assert check_in(client) == ["Checked in: 5 points added."]

    assert available(member) == 5
    shown = checkin_panel(client)
    assert "Checked in today" in shown
    assert "Check in today (+5 points)" not in shown
    award = ActionAward.objects.get()
    assert (award.member, award.action, award.points) == (member, Action.CHECKIN, 5)
    assert Posting.objects.get(key=award.key).member == member

    assert check_in(client) == ["You have already checked in today."]

    assert available(member) == 5
    assert ActionAward.objects.count() == 1
    assert find_drift() == []


def test_yesterdays_check_in_leaves_todays_button(client, checkin_rule):
    member = new_member()
    actions.check_in(member, now=timezone.now() - timedelta(days=1))
    client.force_login(member.user)

    assert "Check in today (+5 points)" in checkin_panel(client)
    assert check_in(client) == ["Checked in: 5 points added."]
    assert available(member) == 10


def test_a_check_in_past_the_cap_says_it_earns_nothing(client):
    ActionRule.objects.create(
        action=Action.CHECKIN, points=5, cap=1, cap_period=ActionRule.Period.EVER
    )
    member = new_member()
    actions.check_in(member, now=timezone.now() - timedelta(days=1))
    client.force_login(member.user)

    assert check_in(client) == ["Thanks for checking in. No points for it just now."]

    assert available(member) == 5
    assert ActionAward.objects.count() == 1
    assert find_drift() == []


def test_checking_in_is_a_post_by_the_signed_in_member_with_csrf(client, checkin_rule):
    response = client.post(reverse(CHECKIN))
    assert response.status_code == 302
    assert reverse("customer:login") in response.url

    client = Client(enforce_csrf_checks=True)
    member = new_member()
    client.force_login(member.user)
    assert client.get(reverse(CHECKIN)).status_code == 405
    assert client.post(reverse(CHECKIN)).status_code == 403
    assert not ActionAward.objects.exists()
    assert available(member) == 0


def test_checking_in_awards_only_the_signed_in_member(client, checkin_rule):
    mine, theirs = new_member(), new_member()
    client.force_login(mine.user)

    client.post(reverse(CHECKIN), {"member": theirs.pk})

    assert (available(mine), available(theirs)) == (5, 0)
    assert ActionAward.objects.get().member == mine


# Invite friends ---------------------------------------------------------------------


def test_the_tab_shows_the_members_referral_link_and_code(client):
    member = new_member()
    client.force_login(member.user)

    page = client.get(reverse(ACCOUNT)).content.decode()

    code = Member.objects.get(pk=member.pk).referral_code
    assert code
    link = f"http://testserver{reverse('home')}?ref={code}"
    panel = page.split('id="loyalty-referral"')[1]
    assert "Invite friends" in panel
    assert f'href="{link}"' in panel
    assert (
        f'<code id="loyalty-referral-code" class="user-select-all">{code}</code>'
        in (panel)
    )
    # The same code on every visit.
    assert code in client.get(reverse(ACCOUNT)).content.decode()
    assert Member.objects.get(pk=member.pk).referral_code == code


def test_the_tab_counts_the_members_referrals_and_rewarded_ones(client):
    member = new_member()
    for status in (
        Referral.Status.PENDING,
        Referral.Status.REWARDED,
        Referral.Status.REWARDED,
        Referral.Status.REFUSED,
    ):
        Referral.objects.create(referrer=member, referred=new_member(), status=status)
    other = new_member()
    Referral.objects.create(
        referrer=other, referred=new_member(), status=Referral.Status.REWARDED
    )
    client.force_login(member.user)

    page = client.get(reverse(ACCOUNT)).content.decode()

    counts = page.split('id="loyalty-referral-counts"')[1].split("</p>")[0]
    assert "4 friends joined through you; 2 earned you points." in counts


def test_the_tab_says_what_a_referral_earns_when_the_shop_rewards_it(client):
    client.force_login(new_member().user)
    assert "You earn" not in client.get(reverse(ACCOUNT)).content.decode()

    ActionRule.objects.create(action=Action.REFERRER, points=300)

    page = client.get(reverse(ACCOUNT)).content.decode()
    assert (
        "You earn 300 points when a friend who joins through your link or code "
        "places their first order." in page
    )
    assert "0 friends joined through you; 0 earned you points." in page


def test_another_members_code_and_referrals_are_never_shown(client):
    mine, theirs = new_member(), new_member()
    their_client = Client()
    their_client.force_login(theirs.user)
    their_client.get(reverse(ACCOUNT))  # their code is drawn
    Referral.objects.create(referrer=theirs, referred=new_member())
    their_code = Member.objects.get(pk=theirs.pk).referral_code
    client.force_login(mine.user)

    page = client.get(reverse(ACCOUNT), {"member": theirs.pk}).content.decode()

    assert their_code not in page
    assert Member.objects.get(pk=mine.pk).referral_code in page
    assert "0 friends joined through you" in page


def test_saving_a_birthday_completes_the_profile_once(client):
    ActionRule.objects.create(
        action=ActionRule.Action.PROFILE, points=100, cap=1, cap_period="ever"
    )
    member = new_member()  # a first and last name already
    client.force_login(member.user)

    client.post(reverse("loyalty:birthday"), {"month": 3, "day": 14})
    client.post(reverse("loyalty:birthday"), {"month": 3, "day": 15})

    assert available(member) == 100
    assert ActionAward.objects.filter(action=ActionRule.Action.PROFILE).count() == 1
    assert find_drift() == []
