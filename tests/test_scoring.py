"""Member segments on constructed histories: activity by the last interaction,
value by spend rank, only with consent to profiling, kept per run, and what the
dashboard's member search does with them."""

import itertools
from datetime import timedelta
from decimal import Decimal
from html import unescape

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from oscar_loyalty import consent, scoring, tasks
from oscar_loyalty.models import ActionAward, Member, MemberScore, OrderActivity
from oscar_loyalty.services.members import get_or_create_member
from tests.factories import StaffFactory, UserFactory
from tests.test_dashboard_members import grant

pytestmark = pytest.mark.django_db

NOW = timezone.now().replace(microsecond=0)
numbers = itertools.count(500_000)


def member(*, joined_days=400, profiling=True, **user_fields):
    user = UserFactory(last_login=None, **user_fields)
    found = get_or_create_member(user)
    Member.objects.filter(pk=found.pk).update(
        joined_at=NOW - timedelta(days=joined_days)
    )
    if profiling:
        consent.record(found, {"profiling": True}, source="account")
    found.refresh_from_db()
    return found


def order(who, spend, days_ago, *, cancelled=False, refunded="0"):
    placed = NOW - timedelta(days=days_ago)
    return OrderActivity.objects.create(
        member=who,
        order_number=str(next(numbers)),
        placed_at=placed,
        spend=Decimal(spend),
        refunded=Decimal(refunded),
        cancelled_at=placed if cancelled else None,
    )


def segments(who):
    who.refresh_from_db()
    return who.activity_segment, who.value_segment


@pytest.mark.parametrize(
    "days,expected",
    [(0, "active"), (30, "active"), (31, "cooling"), (90, "cooling"),
     (91, "at_risk"), (180, "at_risk"), (181, "dormant"), (900, "dormant")],
)  # fmt: skip
def test_activity_boundaries(days, expected):
    assert scoring.activity_of(days, (30, 90, 180)) == expected


def test_the_last_interaction_of_any_kind_sets_the_activity():
    ordered = member()
    order(ordered, "50", days_ago=10)
    signed_in = member()
    get_user_model().objects.filter(pk=signed_in.user_id).update(
        last_login=NOW - timedelta(days=60)
    )
    checked_in = member()
    ActionAward.objects.create(
        member=checked_in,
        action="checkin",
        key=f"checkin:{checked_in.pk}",
        points=5,
        created_at=NOW - timedelta(days=120),
    )
    quiet = member()
    order(quiet, "80", days_ago=300)
    new = member(joined_days=2)

    assert scoring.score_all(NOW) == 5

    assert segments(ordered)[0] == "active"
    assert segments(signed_in)[0] == "cooling"
    assert segments(checked_in)[0] == "at_risk"
    assert segments(quiet)[0] == "dormant"
    assert segments(new)[0] == "active"  # joining is an interaction


def test_value_splits_spenders_20_60_20_and_the_rest_bought_nothing():
    spenders = [member() for _ in range(10)]
    for rank, who in enumerate(spenders, start=1):
        order(who, str(rank * 100), days_ago=20)
    order(spenders[0], "5000", days_ago=500)  # outside the 12-month window
    order(spenders[1], "5000", days_ago=5, cancelled=True)  # cancelled
    order(spenders[9], "900", days_ago=5, refunded="900")  # 1,000 + 0 net of refund
    nothing = member()

    scoring.score_all(NOW)

    values = [segments(who)[1] for who in spenders]
    assert values == ["bottom"] * 2 + ["middle"] * 6 + ["top"] * 2
    assert segments(nothing)[1] == "none"


def test_only_members_who_agreed_to_profiling_are_scored_and_withdrawing_forgets():
    agreed = member()
    order(agreed, "100", days_ago=3)
    refused = member(profiling=False)
    order(refused, "100", days_ago=3)

    scoring.score_all(NOW)

    assert segments(agreed) == ("active", "top")
    assert segments(refused) == ("", "")
    assert not MemberScore.objects.filter(member=refused).exists()

    consent.record(agreed, {"profiling": False}, source="account")

    # Forgotten at once, not at the next run.
    agreed.refresh_from_db()
    assert (agreed.activity_segment, agreed.scored_at) == ("", None)
    assert not MemberScore.objects.filter(member=agreed).exists()
    scoring.score_all(NOW + timedelta(days=1))

    agreed.refresh_from_db()
    assert (agreed.activity_segment, agreed.scored_at) == ("", None)
    assert not MemberScore.objects.filter(member=agreed).exists()


def test_each_run_is_kept_and_a_rerun_of_a_chunk_changes_nothing():
    who = member()
    order(who, "100", days_ago=20)
    scoring.score_all(NOW)
    later = NOW + timedelta(days=40)
    scoring.score_all(later)
    scoring.score_all(later)  # a retried task

    history = list(
        MemberScore.objects.filter(member=who)
        .order_by("scored_at")
        .values_list("scored_at", "activity_segment", "spend", "orders")
    )
    assert history == [
        (NOW, "active", Decimal("100.00"), 1),
        (later, "cooling", Decimal("100.00"), 1),
    ]
    who.refresh_from_db()
    assert who.scored_at == later

    # An older run finishing late does not overwrite the newer segments.
    scoring.score_all(NOW)
    who.refresh_from_db()
    assert (who.scored_at, who.activity_segment) == (later, "cooling")


def test_the_nightly_task_fans_out_by_id_range_with_one_ranking(settings):
    settings.OSCAR_LOYALTY_SCORING_CHUNK = 2
    spenders = [member() for _ in range(5)]
    for rank, who in enumerate(spenders, start=1):
        order(who, str(rank * 10), days_ago=1)

    chunks = tasks.score_members.delay(NOW.isoformat()).get()

    assert chunks >= 3
    # Ranked against all members, not within each chunk of two.
    assert [segments(who)[1] for who in spenders] == [
        "bottom",
        "middle",
        "middle",
        "middle",
        "top",
    ]
    assert MemberScore.objects.filter(scored_at=NOW).count() == 5


def test_the_command_scores_now(capsys):
    member()
    call_command("score_members")
    assert "1 member(s) scored." in capsys.readouterr().out


def test_staff_find_members_by_segment_and_see_them_on_the_members_page():
    active = member(email="active@example.com")
    order(active, "300", days_ago=1)
    dormant = member(email="dormant@example.com")
    order(dormant, "100", days_ago=400)
    unscored = member(email="private@example.com", profiling=False)
    scoring.score_all(NOW)
    client = Client()
    client.force_login(grant(StaffFactory(), "view_member", "export_data"))
    url = reverse("loyalty_dashboard:loyalty-member-list")

    page = client.get(url, {"activity": "dormant"}).content.decode()
    assert "dormant@example.com" in page and "active@example.com" not in page
    page = client.get(url, {"value": "top"}).content.decode()
    assert "active@example.com" in page and "dormant@example.com" not in page

    detail = reverse("loyalty_dashboard:loyalty-member-detail", args=[active.pk])
    html = unescape(client.get(detail).content.decode())
    segment = html[html.index('id="loyalty-member-segments"') :]
    assert "Active · Top 20 %" in segment[: segment.index("</td>")]
    detail = reverse("loyalty_dashboard:loyalty-member-detail", args=[unscored.pk])
    html = unescape(client.get(detail).content.decode())
    assert "has not agreed to profiling" in html

    export = client.get(url, {"activity": "active", "format": "csv"})
    content = b"".join(export.streaming_content)
    lines = content.decode("utf-8-sig").splitlines()
    assert lines[0].endswith("Activity segment,Value segment,Segments as of")
    assert len(lines) == 2 and "active@example.com" in lines[1]
    assert ",Active,Top 20 %," in lines[1]


def test_a_chunk_of_more_ids_than_sqlite_takes_parameters_is_one_lookup():
    from oscar_loyalty.bulk import AnyOf

    who = member()
    ids = list(range(who.pk, who.pk + 40_000))
    assert list(
        Member.objects.filter(AnyOf("pk", ids)).values_list("pk", flat=True)
    ) == [who.pk]
