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
    """The member's current activity and value segments ("", "" unscored)."""
    score = scoring.score_of(who)
    return (score.activity_segment, score.value_segment) if score else ("", "")


@pytest.mark.parametrize(
    "days,expected",
    [(0, "active"), (30, "active"), (31, "cooling"), (90, "cooling"),
     (91, "at_risk"), (180, "at_risk"), (181, "dormant"), (900, "dormant")],
)  # fmt: skip
def test_activity_boundaries(days, expected):
    # Joined (an interaction) exactly ``days`` before the run, nothing since.
    who = member(joined_days=days)
    scoring.score_all(NOW)
    assert segments(who)[0] == expected


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
    assert segments(agreed) == ("", "")
    assert not MemberScore.objects.filter(member=agreed).exists()
    scoring.score_all(NOW + timedelta(days=1))

    assert segments(agreed) == ("", "")
    assert not MemberScore.objects.filter(member=agreed).exists()


def test_a_member_whose_account_closed_loses_the_history_at_the_next_run():
    who = member()
    order(who, "100", days_ago=3)
    scoring.score_all(NOW)
    get_user_model().objects.filter(pk=who.user_id).update(is_active=False)

    scoring.score_all(NOW + timedelta(days=1))

    assert not MemberScore.objects.filter(member=who).exists()


def test_each_run_is_kept_and_a_rerun_changes_nothing():
    who = member()
    order(who, "100", days_ago=20)
    scoring.score_all(NOW)
    later = NOW + timedelta(days=40)
    first = scoring.run(later)
    assert scoring.run(later) == first  # run again at the same moment

    history = list(
        MemberScore.objects.filter(member=who)
        .order_by("scored_at")
        .values_list("scored_at", "activity_segment", "value_segment")
    )
    assert history == [(NOW, "active", "top"), (later, "cooling", "top")]
    assert scoring.current_run().scored_at == later
    assert segments(who) == ("cooling", "top")
    assert scoring.ScoringRun.objects.get(scored_at=later).summary["activity"] == {
        "cooling": 1
    }


def test_the_nightly_task_scores_everyone_once_even_when_retried():
    spenders = [member() for _ in range(5)]
    for rank, who in enumerate(spenders, start=1):
        order(who, str(rank * 10), days_ago=1)

    assert tasks.score_members.delay(NOW.isoformat()).get() == 5

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
    assert lines[0].endswith(
        "Activity segment,Value segment,RFM segment,Churn risk,Segments as of"
    )
    assert len(lines) == 2 and "active@example.com" in lines[1]
    assert ",Active,Top 20 %,No confirmed orders," in lines[1]


def test_a_chunk_of_more_ids_than_sqlite_takes_parameters_is_one_lookup():
    from oscar_loyalty.bulk import AnyOf

    who = member()
    ids = list(range(who.pk, who.pk + 40_000))
    assert list(
        Member.objects.filter(AnyOf("pk", ids)).values_list("pk", flat=True)
    ) == [who.pk]


def history(who, *, every, last_days_ago, orders, spend="100", confirmed=True):
    """``orders`` orders ``every`` days apart, the last ``last_days_ago`` days ago."""
    for i in range(orders):
        made = order(who, spend, days_ago=last_days_ago + i * every)
        if confirmed:
            OrderActivity.objects.filter(pk=made.pk).update(confirmed_at=made.placed_at)


def rfm(who):
    score = MemberScore.objects.get(member=who, scored_at=NOW)
    return (
        score.recency_score,
        score.frequency_score,
        score.monetary_score,
        score.rfm_segment,
    )


def test_rfm_scores_are_quintiles_and_name_the_segments():
    champion, newcomer, potential, slipping, big_gone = (member() for _ in range(5))
    history(champion, every=20, last_days_ago=5, orders=10, spend="100")
    history(newcomer, every=30, last_days_ago=20, orders=1, spend="50")
    history(potential, every=30, last_days_ago=60, orders=4, spend="100")
    history(slipping, every=30, last_days_ago=200, orders=6, spend="100")
    history(big_gone, every=30, last_days_ago=400, orders=8, spend="100")
    unconfirmed = member()
    history(unconfirmed, every=30, last_days_ago=3, orders=2, confirmed=False)
    never = member()

    scoring.score_all(NOW)

    assert rfm(champion) == (5, 5, 5, "champions")
    assert rfm(newcomer) == (4, 1, 1, "new")
    assert rfm(potential) == (3, 2, 2, "potential")
    assert rfm(slipping) == (2, 3, 3, "at_risk")
    assert rfm(big_gone) == (1, 4, 4, "cant_lose")
    # No confirmed order: no scores (and they do not move the quintiles).
    assert rfm(unconfirmed) == (None, None, None, "none")
    assert rfm(never) == (None, None, None, "none")
    summary = scoring.ScoringRun.objects.get(scored_at=NOW).summary
    assert summary["rfm"] == {
        "champions": 1,
        "new": 1,
        "potential": 1,
        "at_risk": 1,
        "cant_lose": 1,
        "none": 2,
    }


def test_rfm_lower_rows_of_the_grid():
    members = [member() for _ in range(5)]
    for rank, who in enumerate(members):  # 5 orders 5 days ago … 1 order 400 ago
        history(
            who,
            every=10,
            last_days_ago=[5, 50, 100, 200, 400][rank],
            orders=5 - rank,
            spend="100",
        )

    scoring.score_all(NOW)

    segments_found = [rfm(who)[3] for who in members]
    assert segments_found == ["champions", "champions", "loyal", "hibernating", "lost"]


def test_members_with_the_same_history_share_their_scores():
    members = [member() for _ in range(6)]
    for who, days_ago, orders in zip(
        members, [5, 50, 100, 100, 200, 400], [5, 4, 3, 3, 2, 1], strict=True
    ):
        history(who, every=10, last_days_ago=days_ago, orders=orders)

    scoring.score_all(NOW)

    assert rfm(members[2]) == rfm(members[3])
    # The tie sits on two boundaries (the 3rd and 4th of 6 values): both twins
    # score as the lower side of it.
    assert [rfm(who)[0] for who in members] == [5, 4, 2, 2, 1, 1]


def churn(who, now=NOW):
    return MemberScore.objects.get(member=who, scored_at=now).churn_risk


def redeem(who, days_ago):
    from oscar_loyalty.models import Posting

    Posting.objects.create(
        key=f"redeem:test:{next(numbers)}",
        kind=Posting.Kind.REDEEM,
        member=who,
        created_at=NOW - timedelta(days=days_ago),
    )


def test_churn_risk_on_constructed_histories():
    steady = member(joined_days=400)
    history(steady, every=30, last_days_ago=10, orders=12)
    lapsed = member(joined_days=450)  # monthly for a year, then 3 months of nothing
    history(lapsed, every=30, last_days_ago=90, orders=12)
    redeeming_less = member(joined_days=400)
    history(redeeming_less, every=30, last_days_ago=10, orders=12)
    for days_ago in (100, 120, 140, 160):
        redeem(redeeming_less, days_ago)
    redeem(redeeming_less, 20)
    never_bought = member(joined_days=200)
    slowing = member(joined_days=400)  # 6 orders before the last 90 days, 2 in them
    for days_ago in (95, 110, 125, 140, 155, 170, 30, 60):
        order(slowing, "40", days_ago=days_ago)

    scoring.score_all(NOW)

    # On schedule: 10 of 180 days away, × 20 = 1.1.
    assert churn(steady) == 1
    # 3 × the usual gap (40) + no orders where there were 3 (25) + 90 days
    # away (10).
    assert churn(lapsed) == 75
    # As steady, plus 1 redemption where there were 4: 15 × 0.75 = 11.25.
    assert churn(redeeming_less) == 12
    # 200 days since joining against 90 (40 × 0.61) + over 180 days away (20).
    assert churn(never_bought) == 44
    # 30 days since the last order against a usual 20 (140 days over 7 gaps):
    # 40 × 0.25 = 10; 2 orders where there were 6: 25 × 2/3 = 16.7; 30 days
    # away: 20 × 1/6 = 3.3.
    assert churn(slowing) == 30
    assert scoring.score_of(steady).churn_risk == 1


def test_a_retried_task_finds_its_run():
    member()
    first = scoring.run(NOW, task_id="nightly-1")
    again = scoring.run(NOW + timedelta(minutes=5), task_id="nightly-1")
    assert again.pk == first.pk
    assert scoring.ScoringRun.objects.count() == 1
    assert MemberScore.objects.count() == 1


def test_older_runs_keep_their_summary_and_the_first_of_each_month_its_rows(
    settings,
):
    settings.OSCAR_LOYALTY_SCORES_DAILY_DAYS = 90
    who = member()
    order(who, "100", days_ago=20)
    start = NOW.replace(day=1) - timedelta(days=200)
    runs = [start + timedelta(days=10 * k) for k in range(21)]  # 200 days of runs
    for when in runs:
        scoring.run(when)

    thinned = scoring.thin_history(NOW)

    kept = list(
        scoring.ScoringRun.objects.filter(rows_kept=True)
        .order_by("scored_at")
        .values_list("scored_at", flat=True)
    )
    cutoff = NOW - timedelta(days=90)
    expected, months = [], set()
    for when in runs:
        month = (when.year, when.month)
        if when >= cutoff or month not in months:
            expected.append(when)
        months.add(month)
    assert kept == expected
    assert thinned == len(runs) - len(kept) > 0
    assert MemberScore.objects.count() == len(kept)
    # Every run keeps its summary, and "as of" a thinned day finds the run
    # before it that kept its rows.
    assert scoring.ScoringRun.objects.count() == len(runs)
    assert scoring.thin_history(NOW) == 0
    thinned_run = scoring.ScoringRun.objects.filter(rows_kept=False).first()
    as_of = scoring.run_as_of(thinned_run.scored_at)
    assert as_of.rows_kept and as_of.scored_at < thinned_run.scored_at


def test_staff_list_members_by_their_segment_as_of_a_date():
    who = member(email="was-active@example.com")
    order(who, "100", days_ago=100)
    scoring.run(NOW - timedelta(days=80))  # then: active (20 days after)
    scoring.run(NOW)  # now: at risk
    client = Client()
    client.force_login(grant(StaffFactory(), "view_member"))
    url = reverse("loyalty_dashboard:loyalty-member-list")

    then = (NOW - timedelta(days=80)).date().isoformat()
    page = client.get(url, {"activity": "active", "as_of": then}).content.decode()
    assert "was-active@example.com" in page
    page = client.get(url, {"activity": "active"}).content.decode()
    assert "was-active@example.com" not in page
    long_ago = (NOW - timedelta(days=900)).date().isoformat()
    page = client.get(url, {"activity": "active", "as_of": long_ago})
    assert "was-active@example.com" not in page.content.decode()


def test_thinning_and_forgetting_delete_rows_without_reading_them(settings):
    """A run has a million rows: they go in one statement per run even though
    the shop's search index listens to every model's deletions (Haystack's
    realtime processor in the example shop), which makes ``QuerySet.delete()``
    read each row first."""
    from django.db import connection
    from django.db.models.signals import post_delete
    from django.test.utils import CaptureQueriesContext

    assert post_delete.has_listeners(MemberScore)  # the trap is really there
    settings.OSCAR_LOYALTY_SCORES_DAILY_DAYS = 90
    members = [member() for _ in range(5)]
    old = NOW.replace(day=1) - timedelta(days=200)
    scoring.run(old)
    scoring.run(old + timedelta(days=1))  # same month: thinned
    scoring.run(NOW)
    table = MemberScore._meta.db_table

    def reads(queries):
        return [
            q["sql"]
            for q in queries
            if q["sql"].lstrip().upper().startswith("SELECT") and table in q["sql"]
        ]

    with CaptureQueriesContext(connection) as thinning:
        assert scoring.thin_history(NOW) == 1
    assert not reads(thinning.captured_queries)
    assert MemberScore.objects.filter(scored_at=old + timedelta(days=1)).count() == 0
    assert MemberScore.objects.filter(scored_at=old).count() == 5

    with CaptureQueriesContext(connection) as forgetting:
        scoring.forget(Member.objects.filter(pk=members[0].pk))
    assert not reads(forgetting.captured_queries)
    assert not MemberScore.objects.filter(member=members[0]).exists()
    assert MemberScore.objects.count() == 2 * 4
