"""Action rewards: caps per period in the shop's time zone, the daily check-in,
reviews (through Oscar's review form and its dashboard), the sign-up bonus,
birthday points and a completed profile. Every scenario ends with a healthy
ledger.
"""

import multiprocessing
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.db import connection, transaction
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone, translation
from django.utils.dateparse import parse_datetime
from oscar.core.loading import get_model

from oscar_loyalty import action_tasks
from oscar_loyalty.audit import find_drift
from oscar_loyalty.exceptions import AlreadyCheckedIn
from oscar_loyalty.models import ActionAward, ActionRule, Lot, Member, Posting
from oscar_loyalty.services import actions, ledger
from oscar_loyalty.services.members import get_or_create_member
from tests.concurrency import run_in_processes
from tests.factories import ProductFactory, UserFactory

ProductReview = get_model("reviews", "ProductReview")

SHANGHAI = ZoneInfo(settings.TIME_ZONE)
Action = ActionRule.Action
Period = ActionRule.Period


def local(*args):
    """A moment in the shop's time zone (Asia/Shanghai, UTC+8)."""
    return datetime(*args, tzinfo=SHANGHAI)


def rule(action, points=10, cap=None, period=Period.DAY, **fields):
    return ActionRule.objects.create(
        action=action, points=points, cap=cap, cap_period=period, **fields
    )


def new_member(**fields):
    member = get_or_create_member(UserFactory())
    if fields:
        Member.objects.filter(pk=member.pk).update(**fields)
        member.refresh_from_db()
    return member


def available(member):
    member.refresh_from_db()
    return member.available


def shop_language(message):
    with translation.override(settings.LANGUAGE_CODE):
        return str(message)


@pytest.fixture(autouse=True)
def healthy_ledger(db):
    """Every scenario must leave the ledger's cached balances true to its rows."""
    yield
    assert find_drift() == []


# Cap periods at their edges ---------------------------------------------------------


@pytest.mark.parametrize(
    ("period", "moment", "start", "end"),
    [
        (
            Period.DAY,
            local(2025, 6, 15, 23, 59, 59),
            local(2025, 6, 15),
            local(2025, 6, 16),
        ),
        (Period.DAY, local(2025, 6, 16, 0, 0), local(2025, 6, 16), local(2025, 6, 17)),
        # 15 June 2025 is a Sunday: its ISO week began on Monday 9 June.
        (
            Period.WEEK,
            local(2025, 6, 15, 23, 59),
            local(2025, 6, 9),
            local(2025, 6, 16),
        ),
        (Period.WEEK, local(2025, 6, 16, 0, 0), local(2025, 6, 16), local(2025, 6, 23)),
        # A week across the new year stays one week.
        (Period.WEEK, local(2026, 1, 1, 12, 0), local(2025, 12, 29), local(2026, 1, 5)),
        (
            Period.MONTH,
            local(2024, 2, 29, 23, 59),
            local(2024, 2, 1),
            local(2024, 3, 1),
        ),
        (
            Period.MONTH,
            local(2025, 12, 31, 8, 0),
            local(2025, 12, 1),
            local(2026, 1, 1),
        ),
        (
            Period.YEAR,
            local(2025, 12, 31, 23, 59),
            local(2025, 1, 1),
            local(2026, 1, 1),
        ),
    ],
)
def test_cap_periods_are_local_days_iso_weeks_months_and_years(
    period, moment, start, end
):
    assert actions.period_bounds(period, moment) == (start, end)
    # The same moment written in UTC falls in the same local period.
    assert actions.period_bounds(period, moment.astimezone(ZoneInfo("UTC"))) == (
        start,
        end,
    )


def test_ever_has_no_bounds():
    assert actions.period_bounds(Period.EVER, local(2025, 6, 15)) is None


@pytest.mark.django_db
def test_a_daily_cap_ends_at_local_midnight_not_at_utc_midnight():
    rule(Action.REVIEW, points=5, cap=2, period=Period.DAY)
    member = new_member()

    def award(key, moment):
        return actions.reward_action(member, Action.REVIEW, key=key, now=moment)

    # 07:59 in Shanghai is 23:59 UTC the day before: the same local day as 08:01.
    assert award("a", local(2025, 6, 15, 7, 59)) is not None
    assert award("b", local(2025, 6, 15, 8, 1)) is not None
    assert award("c", local(2025, 6, 15, 23, 59, 59)) is None
    assert award("c", local(2025, 6, 16, 0, 0)) is not None
    assert ActionAward.objects.filter(member=member).count() == 3
    assert available(member) == 15


@pytest.mark.django_db
def test_a_weekly_cap_counts_monday_to_sunday():
    rule(Action.REVIEW, points=5, cap=1, period=Period.WEEK)
    member = new_member()

    def award(key, moment):
        return actions.reward_action(member, Action.REVIEW, key=key, now=moment)

    assert award("mon", local(2025, 6, 9, 0, 0)) is not None
    assert award("sun", local(2025, 6, 15, 23, 59)) is None
    assert award("next-mon", local(2025, 6, 16, 0, 0)) is not None
    assert award("next-sun", local(2025, 6, 22, 23, 59, 59)) is None
    assert available(member) == 10


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("period", "last_in", "first_out"),
    [
        (Period.MONTH, local(2025, 6, 30, 23, 59), local(2025, 7, 1, 0, 0)),
        (Period.YEAR, local(2025, 12, 31, 23, 59), local(2026, 1, 1, 0, 0)),
    ],
)
def test_monthly_and_yearly_caps_reset_at_the_local_boundary(
    period, last_in, first_out
):
    rule(Action.REVIEW, cap=1, period=period)
    member = new_member()
    assert actions.reward_action(
        member, Action.REVIEW, key="first", now=last_in - timedelta(days=20)
    )
    assert (
        actions.reward_action(member, Action.REVIEW, key="second", now=last_in) is None
    )
    assert actions.reward_action(member, Action.REVIEW, key="second", now=first_out)


@pytest.mark.django_db
def test_an_ever_cap_never_resets_and_caps_are_per_member():
    rule(Action.REVIEW, cap=2, period=Period.EVER)
    mei, li = new_member(), new_member()
    for year in (2020, 2025):
        actions.reward_action(mei, Action.REVIEW, key=f"m{year}", now=local(year, 1, 1))
    assert actions.reward_action(mei, Action.REVIEW, key="m2030") is None
    assert actions.reward_action(li, Action.REVIEW, key="l1") is not None


@pytest.mark.django_db
def test_reversed_awards_still_count_against_the_cap():
    """Deleting a rewarded review and posting another must not pay again."""
    rule(Action.REVIEW, points=20, cap=1, period=Period.DAY)
    member = new_member()
    now = local(2025, 6, 15, 10, 0)
    award = actions.reward_action(member, Action.REVIEW, key="r1", now=now)
    actions.reverse_award(award, now=now)
    assert available(member) == 0

    assert actions.reward_action(member, Action.REVIEW, key="r2", now=now) is None
    assert available(member) == 0


@pytest.mark.django_db
def test_no_rule_or_an_inactive_rule_awards_nothing():
    member = new_member()
    assert actions.reward_action(member, Action.SIGNUP, key="s") is None
    rule(Action.SIGNUP, is_active=False)
    assert actions.reward_action(member, Action.SIGNUP, key="s") is None
    assert not ActionAward.objects.exists()
    assert not Posting.objects.exists()


@pytest.mark.django_db
def test_an_award_is_spendable_at_once_and_its_key_is_its_postings():
    rule(Action.SIGNUP, points=300)
    member = new_member()
    now = timezone.now()

    award = actions.reward_action(member, Action.SIGNUP, key="signup:x", now=now)

    lot = Lot.objects.get(entries__posting__key="signup:x")
    assert (lot.source, lot.status, lot.remaining) == ("action", "active", 300)
    assert (award.points, award.action, award.created_at) == (300, "signup", now)
    member.refresh_from_db()
    assert (member.available, member.spendable, member.lifetime_earned) == (
        300,
        300,
        300,
    )
    posting = Posting.objects.get(key="signup:x")
    assert posting.reason == "Signing up"


# Check-in -------------------------------------------------------------------------


@pytest.mark.django_db
def test_checking_in_twice_a_day_is_refused_with_a_message():
    rule(Action.CHECKIN, points=5, cap=None)
    member = new_member()

    award = actions.check_in(member, now=local(2025, 6, 15, 0, 0))
    assert award.key == f"checkin:{member.pk}:2025-06-15"

    with pytest.raises(AlreadyCheckedIn) as refused:
        actions.check_in(member, now=local(2025, 6, 15, 23, 59, 59))
    assert shop_language(refused.value) == "You have already checked in today."

    assert actions.check_in(member, now=local(2025, 6, 16, 0, 0)) is not None
    assert available(member) == 10


@pytest.mark.django_db
def test_the_check_in_day_is_the_shops_day():
    rule(Action.CHECKIN, points=5)
    member = new_member()
    # 16:30 UTC on the 15th is 00:30 on the 16th in Shanghai.
    moment = datetime(2025, 6, 15, 16, 30, tzinfo=ZoneInfo("UTC"))
    award = actions.check_in(member, now=moment)
    assert award.key.endswith(":2025-06-16")
    with pytest.raises(AlreadyCheckedIn):
        actions.check_in(member, now=local(2025, 6, 16, 20, 0))


@pytest.mark.django_db
def test_check_ins_past_a_weekly_cap_earn_nothing_without_an_error():
    rule(Action.CHECKIN, points=5, cap=2, period=Period.WEEK)
    member = new_member()
    days = [local(2025, 6, day, 9, 0) for day in (9, 10, 11)]  # Mon, Tue, Wed

    results = [actions.check_in(member, now=day) for day in days]

    assert [result is not None for result in results] == [True, True, False]
    # Nothing was written on Wednesday, so checking in again is not "twice".
    assert actions.check_in(member, now=days[2]) is None
    assert available(member) == 10


@pytest.mark.django_db
def test_checking_in_while_check_ins_are_off_earns_nothing():
    member = new_member()
    assert actions.check_in(member) is None
    rule(Action.CHECKIN, points=5)
    assert actions.check_in(member) is not None


# Reviews through Oscar -----------------------------------------------------------


@pytest.fixture
def review_rule(db):
    return rule(Action.REVIEW, points=50, cap=3, period=Period.DAY)


@pytest.fixture
def product(db):
    return ProductFactory(title="Tie Guan Yin")


@pytest.fixture
def staff_client(db):
    staff = Client()
    staff.force_login(UserFactory(is_staff=True, is_superuser=True))
    return staff


def write_review(client, product, title="Lovely tea"):
    response = client.post(
        reverse(
            "catalogue:reviews-add",
            kwargs={"product_slug": product.slug, "product_pk": product.pk},
        ),
        {"title": title, "score": 5, "body": "Floral and sweet."},
    )
    assert response.status_code == 302, getattr(response, "context", None)
    return ProductReview.objects.get(product=product, title=title)


def set_review_status(staff_client, review, status):
    """Oscar's dashboard bulk action, as a moderator uses it."""
    response = staff_client.post(
        reverse("dashboard:reviews-list"),
        {
            "action": "update_selected_review_status",
            "selected_review": [review.pk],
            "status": status,
        },
    )
    assert response.status_code == 302
    review.refresh_from_db()
    assert review.status == status


def delete_review(staff_client, review):
    response = staff_client.post(
        reverse("dashboard:reviews-delete", kwargs={"pk": review.pk})
    )
    assert response.status_code == 302
    assert not ProductReview.objects.filter(pk=review.pk).exists()


@pytest.fixture
def reviewer(client):
    member = new_member()
    client.force_login(member.user)
    return member


def test_an_approved_review_earns_points_and_deleting_it_takes_them_back(
    client, staff_client, review_rule, product, reviewer
):
    review = write_review(client, product)  # no moderation: approved at once

    award = ActionAward.objects.get()
    assert (award.key, award.object_id, award.points) == (
        f"review:{review.pk}",
        review.pk,
        50,
    )
    assert available(reviewer) == 50

    delete_review(staff_client, review)

    award.refresh_from_db()
    assert award.reversed_at is not None
    assert available(reviewer) == 0
    member = Member.objects.get(pk=reviewer.pk)
    assert member.lifetime_earned == 0
    reversal = Posting.objects.get(key=f"reverse:action:review:{review.pk}")
    assert (reversal.kind, reversal.shortfall, reversal.reason) == (
        "reverse",
        0,
        "Review withdrawn",
    )


def test_votes_saving_the_review_again_pay_nothing_more(
    client, review_rule, product, reviewer
):
    review = write_review(client, product)
    review.vote_up(UserFactory())
    review.update_totals()  # Oscar saves the review again

    assert ActionAward.objects.count() == 1
    assert Posting.objects.count() == 1
    assert available(reviewer) == 50


def test_deleting_a_review_whose_points_were_spent_records_a_shortfall(
    client, staff_client, review_rule, product, reviewer
):
    review = write_review(client, product)
    ledger.redeem(member=reviewer, points=30, key="spent-some")
    assert available(reviewer) == 20

    delete_review(staff_client, review)

    member = Member.objects.get(pk=reviewer.pk)
    assert (member.available, member.held) == (0, 0)
    reversal = Posting.objects.get(key=f"reverse:action:review:{review.pk}")
    assert reversal.shortfall == 30
    assert ActionAward.objects.get().reversed_at is not None


def test_unapproving_takes_the_points_back_and_approving_again_pays_nothing(
    client, staff_client, review_rule, product, reviewer
):
    review = write_review(client, product)
    assert available(reviewer) == 50

    set_review_status(staff_client, review, ProductReview.REJECTED)
    assert available(reviewer) == 0
    set_review_status(staff_client, review, ProductReview.APPROVED)
    assert available(reviewer) == 0
    set_review_status(staff_client, review, ProductReview.FOR_MODERATION)
    delete_review(staff_client, review)

    assert available(reviewer) == 0
    assert ActionAward.objects.count() == 1
    assert Posting.objects.filter(kind="reverse").count() == 1


def test_a_moderated_review_earns_when_staff_approve_it(
    client, staff_client, review_rule, product, reviewer, settings
):
    settings.OSCAR_MODERATE_REVIEWS = True
    review = write_review(client, product)
    assert review.status == ProductReview.FOR_MODERATION
    assert not ActionAward.objects.exists()

    set_review_status(staff_client, review, ProductReview.APPROVED)

    assert ActionAward.objects.get().member_id == reviewer.pk
    assert available(reviewer) == 50


def test_reviews_by_customers_without_a_member_account_earn_nothing(
    client, review_rule, product
):
    client.force_login(UserFactory())
    review = write_review(client, product)
    assert review.is_approved
    assert not ActionAward.objects.exists()
    assert actions.reward_review(review) is None


def test_anonymous_reviews_and_unknown_reviews_earn_and_lose_nothing(review_rule):
    anonymous = ProductReview.objects.create(
        product=ProductFactory(),
        title="Nice",
        score=4,
        body="Good",
        name="Guest",
        email="guest@example.com",
        status=ProductReview.APPROVED,
    )
    assert actions.reward_review(anonymous) is None
    assert actions.reverse_review(anonymous.pk) is None
    assert actions.reverse_review(987654) is None
    assert not ActionAward.objects.exists()


def test_the_review_cap_applies_across_products(client, reviewer):
    rule(Action.REVIEW, points=50, cap=2, period=Period.DAY)
    for title in ("One", "Two", "Three"):
        write_review(client, ProductFactory(), title=title)
    assert ActionAward.objects.count() == 2
    assert available(reviewer) == 100


# Sign-up ---------------------------------------------------------------------------


def register(client, email):
    response = client.post(
        reverse("customer:register"),
        {
            "email": email,
            "password1": "a-long-Passw0rd!",
            "password2": "a-long-Passw0rd!",
        },
    )
    assert response.status_code == 302, getattr(response, "context", None)
    return Member.objects.get(user__email=email)


def test_registering_earns_the_sign_up_bonus_once(client, db):
    rule(Action.SIGNUP, points=200)

    member = register(client, "new@example.com")

    award = ActionAward.objects.get()
    assert (award.member, award.key, award.points) == (
        member,
        f"signup:{member.pk}",
        200,
    )
    assert available(member) == 200
    assert actions.reward_signup(member) == award
    assert Posting.objects.count() == 1


def test_registering_without_a_sign_up_rule_still_works(client, db):
    member = register(client, "quiet@example.com")
    assert not ActionAward.objects.exists()
    assert available(member) == 0


# Birthdays -------------------------------------------------------------------------


@pytest.fixture
def birthday_rule(db):
    return rule(Action.BIRTHDAY, points=500, cap=None)


def test_birthday_points_once_a_year_and_29_february(birthday_rule):
    mei = new_member(birth_month=3, birth_day=14)
    leap = new_member(birth_month=2, birth_day=29)
    new_member(birth_month=3, birth_day=20)
    new_member()

    assert actions.reward_birthday_points(today=date(2027, 3, 14)) == 1
    assert actions.reward_birthday_points(today=date(2027, 3, 14)) == 0
    assert actions.reward_birthday_points(today=date(2027, 3, 15)) == 0  # catch-up
    assert ActionAward.objects.get().key == f"birthday:{mei.pk}:2027"
    assert available(mei) == 500

    assert actions.reward_birthday_points(today=date(2027, 2, 28)) == 1
    assert available(leap) == 500
    assert actions.reward_birthday_points(today=date(2028, 3, 14)) == 1  # next year
    assert available(mei) == 1000


def test_a_missed_birthday_run_is_caught_up_the_next_day(birthday_rule):
    mei = new_member(birth_month=12, birth_day=31)
    assert actions.reward_birthday_points(today=date(2027, 1, 1)) == 1
    assert ActionAward.objects.get().key == f"birthday:{mei.pk}:2026"
    assert actions.reward_birthday_points(today=date(2027, 12, 31)) == 1


def test_birthday_points_respect_an_inactive_rule_and_the_cap(birthday_rule):
    mei = new_member(birth_month=3, birth_day=14)
    birthday_rule.is_active = False
    birthday_rule.save()
    assert actions.reward_birthday_points(today=date(2027, 3, 14)) == 0

    birthday_rule.is_active = True
    birthday_rule.cap = 1
    birthday_rule.cap_period = Period.EVER
    birthday_rule.save()
    assert actions.reward_birthday_points(today=date(2027, 3, 14)) == 1
    assert actions.reward_birthday_points(today=date(2028, 3, 14)) == 0
    assert available(mei) == 500


def test_birthday_points_cost_only_the_ledger_write_per_member(birthday_rule):
    def run(day, count):
        for _ in range(count):
            new_member(birth_month=day.month, birth_day=day.day)
        with CaptureQueriesContext(connection) as queries:
            assert actions.reward_birthday_points(today=day) == count
        return len(queries)

    probe = new_member()
    with CaptureQueriesContext(connection) as award_queries:
        # What one member costs: the ledger write and the award row, in a savepoint.
        with transaction.atomic():
            ledger.award(member=probe, points=500, key="probe")
            ActionAward.objects.bulk_create(
                [ActionAward(member=probe, action="birthday", key="probe", points=500)],
                ignore_conflicts=True,
            )
    per_member = len(award_queries)

    two = run(date(2027, 3, 14), 2)
    five = run(date(2027, 4, 14), 5)
    assert five - two == 3 * per_member


def test_the_birthday_task_runs_the_service(birthday_rule):
    mei = new_member(birth_month=3, birth_day=14)
    assert action_tasks.reward_birthday_points.delay("2027-03-14").get() == 1
    assert available(mei) == 500


# Profile ---------------------------------------------------------------------------


@pytest.fixture
def profile_rule(db):
    return rule(Action.PROFILE, points=100)


def test_a_complete_profile_is_rewarded_once_ever(profile_rule):
    member = new_member()
    member.user.first_name = ""
    member.user.save()
    assert actions.reward_profile_completion(member) is None  # no first name

    member.user.first_name = "Mei"
    member.user.save()
    assert actions.reward_profile_completion(member) is None  # no birthday
    Member.objects.filter(pk=member.pk).update(birth_month=3, birth_day=14)
    member.refresh_from_db()

    award = actions.reward_profile_completion(member)
    assert award.key == f"profile:{member.pk}"
    assert actions.reward_profile_completion(member) == award
    assert available(member) == 100


def test_completing_the_profile_in_oscars_profile_form_is_rewarded(
    client, profile_rule
):
    member = new_member(birth_month=3, birth_day=14)
    member.user.first_name = member.user.last_name = ""
    member.user.save()
    client.force_login(member.user)
    assert not ActionAward.objects.exists()

    response = client.post(
        reverse("customer:profile-update"),
        {"first_name": "Mei", "last_name": "Lin", "email": member.user.email},
    )

    assert response.status_code == 302
    assert ActionAward.objects.get().key == f"profile:{member.pk}"
    assert available(member) == 100
    # Saving it again, or signing in again, pays nothing more.
    client.post(
        reverse("customer:profile-update"),
        {"first_name": "Mei", "last_name": "Lin", "email": member.user.email},
    )
    client.force_login(member.user)
    assert ActionAward.objects.count() == 1


# Concurrency (PostgreSQL) ----------------------------------------------------------


def award_with_cap(member_id, now):
    index = multiprocessing.current_process().name.rpartition("-")[2]
    award = actions.reward_action(
        Member(pk=member_id),
        Action.REVIEW,
        key=f"race:{index}",
        now=parse_datetime(now),
    )
    return award is not None


def check_in_at_once(member_id, now):
    try:
        return actions.check_in(Member(pk=member_id), now=parse_datetime(now)).pk
    except AlreadyCheckedIn:
        return "already"


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_awards_never_pass_the_cap():
    rule(Action.REVIEW, points=10, cap=2, period=Period.DAY)
    member = new_member()

    outcomes = run_in_processes(
        award_with_cap, 6, args=(member.pk, timezone.now().isoformat())
    )

    assert all(outcome.ok for outcome in outcomes), [o.error for o in outcomes]
    assert sorted(outcome.value for outcome in outcomes) == [False] * 4 + [True] * 2
    assert ActionAward.objects.count() == 2
    assert available(member) == 20


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_check_ins_pay_once():
    rule(Action.CHECKIN, points=5)
    member = new_member()

    outcomes = run_in_processes(
        check_in_at_once, 4, args=(member.pk, timezone.now().isoformat())
    )

    assert all(outcome.ok for outcome in outcomes), [o.error for o in outcomes]
    values = [outcome.value for outcome in outcomes]
    assert values.count("already") == 3
    assert available(member) == 5
