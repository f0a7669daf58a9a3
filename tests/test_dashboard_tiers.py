"""The owner's tier screens in Oscar's dashboard: the list of tiers, creating and
editing a tier, and a member's tier on their page with the form that sets it.

Everything goes through Django's test client and Oscar's real URL permission
checks; tiers are saved through the screens, so the ``post_save`` receiver makes
their groups as it does in the shop.
"""

from datetime import datetime, time, timedelta
from decimal import Decimal
from html import unescape

import pytest
from django.contrib.admin.models import ADDITION, CHANGE, LogEntry
from django.contrib.auth.models import Group, Permission
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from oscar_loyalty.models import Member, OrderActivity, Tier, TierChange
from oscar_loyalty.services import ledger, tiers
from oscar_loyalty.services.members import get_or_create_member
from tests.factories import StaffFactory, UserFactory

pytestmark = pytest.mark.django_db

TIERS = reverse("loyalty_dashboard:loyalty-tier-list")
NEW_TIER = reverse("loyalty_dashboard:loyalty-tier-create")


@pytest.fixture(autouse=True)
def programme(settings):
    settings.OSCAR_LOYALTY_TIER_BASIS = "spend"
    settings.OSCAR_LOYALTY_TIER_WINDOW = "rolling"
    settings.OSCAR_LOYALTY_TIER_WINDOW_MONTHS = 12
    settings.OSCAR_LOYALTY_TIER_GRACE_DAYS = 30
    settings.OSCAR_LOYALTY_CONFIRM_AFTER_DAYS = None
    return settings


def grant(user, *codenames):
    """``user`` with the plugin's permissions ``codenames``."""
    user.user_permissions.add(
        *Permission.objects.filter(
            codename__in=codenames, content_type__app_label="oscar_loyalty"
        )
    )
    assert user.user_permissions.count() == len(codenames)
    return user


def html_of(response):
    return unescape(response.content.decode())


def update_url(tier):
    return reverse("loyalty_dashboard:loyalty-tier-update", kwargs={"pk": tier.pk})


def detail_url(member):
    return reverse("loyalty_dashboard:loyalty-member-detail", kwargs={"pk": member.pk})


def set_tier_url(member):
    return reverse(
        "loyalty_dashboard:loyalty-member-set-tier", kwargs={"pk": member.pk}
    )


def snapshot():
    """Every tier's fields, to show a refused save changed nothing."""
    return list(Tier.objects.order_by("pk").values())


def member_state(member):
    return Member.objects.filter(pk=member.pk).values(
        "tier_id", "tier_since", "tier_protected_until", "tier_grace_until"
    )[0]


def tier_data(**fields):
    data = {
        "code": "platinum",
        "name": "Platinum",
        "rank": "4",
        "threshold": "8000",
        "points_multiplier": "2",
        "discount_percent": "10",
        "free_shipping": "on",
        "badge": "P",
        "colour": "#e5e4e2",
        "description": "Our best customers.",
    }
    data.update(fields)
    return {key: value for key, value in data.items() if value is not None}


@pytest.fixture
def ladder():
    """Regular (the entry tier), Silver at 1000 and Gold at 5000."""
    return (
        Tier.objects.create(code="regular", name="Regular", rank=1, threshold=0),
        Tier.objects.create(
            code="silver", name="Silver", rank=2, threshold=1000, badge="S"
        ),
        Tier.objects.create(
            code="gold",
            name="Gold",
            rank=3,
            threshold=5000,
            points_multiplier=Decimal("1.5"),
            discount_percent=5,
            free_shipping=True,
            badge="G",
            colour="#d4af37",
        ),
    )


@pytest.fixture
def owner(client):
    """Staff who may see, create and change tiers."""
    user = grant(
        StaffFactory(first_name="Olive", last_name="Owner"),
        "view_tier",
        "add_tier",
        "change_tier",
    )
    client.force_login(user)
    return user


@pytest.fixture
def desk(client):
    """Staff who may see members and set their tier."""
    user = grant(
        StaffFactory(first_name="Tia", last_name="Desk"), "view_member", "set_tier"
    )
    client.force_login(user)
    return user


@pytest.fixture
def viewer(client):
    """Staff who may see members but not set their tier."""
    user = grant(StaffFactory(first_name="Viv", last_name="Ewer"), "view_member")
    client.force_login(user)
    return user


def new_member(tier=None):
    member = get_or_create_member(UserFactory())
    Member.objects.filter(pk=member.pk).update(tier=tier)
    return Member.objects.get(pk=member.pk)


# Permissions -------------------------------------------------------------------------


def tier_screens(tier, member):
    """(url, method, permissions that open it) for each of this file's screens."""
    return [
        (TIERS, "get", ["view_tier"]),
        (NEW_TIER, "get", ["add_tier"]),
        (update_url(tier), "get", ["change_tier"]),
        (set_tier_url(member), "post", ["view_member", "set_tier"]),
    ]


def test_anonymous_visitors_are_sent_to_the_dashboard_login(client, ladder):
    member = new_member(ladder[0])

    for url, method, _perms in tier_screens(ladder[1], member):
        response = getattr(client, method)(url)

        assert response.status_code == 302, url
        assert response.url.startswith("/shop/dashboard/login/?next="), url


def test_staff_without_the_permission_are_refused_and_nothing_changes(client, ladder):
    member = new_member(ladder[0])
    before, state = snapshot(), member_state(member)

    everything = {"view_tier", "add_tier", "change_tier", "view_member", "set_tier"}
    for url, method, perms in tier_screens(ladder[1], member):
        # Every permission but those that open the screen (the list opens with
        # view_tier or change_tier; setting a tier needs set_tier).
        opening = {"view_tier", "change_tier"} if url == TIERS else set(perms)
        opening.discard("view_member")
        client.force_login(grant(StaffFactory(), *(everything - opening)))
        if method == "get":
            assert client.get(url).status_code == 403, url
        response = client.post(
            url,
            {**tier_data(name="Hacked", rank="2", threshold="1000"), "tier": ""}
            | {"reason": "No right", "code": "hacked"},
        )
        assert response.status_code == 403, url

    assert snapshot() == before
    assert member_state(member) == state
    assert not TierChange.objects.exists()
    assert not LogEntry.objects.exists()


def test_staff_with_the_permission_are_let_in(client, ladder):
    member = new_member(ladder[0])

    for url, method, perms in tier_screens(ladder[1], member):
        client.force_login(grant(StaffFactory(), *perms))

        if method == "get":
            assert client.get(url).status_code == 200, url
        else:
            response = client.post(url, {"tier": ladder[1].pk, "reason": "Test"})
            assert response.status_code == 302, url


def test_those_who_may_change_tiers_may_list_them(client, ladder):
    client.force_login(grant(StaffFactory(), "change_tier"))

    assert client.get(TIERS).status_code == 200


def test_those_who_may_only_view_tiers_see_no_create_or_edit_links(client, ladder):
    client.force_login(grant(StaffFactory(), "view_tier"))

    html = html_of(client.get(TIERS))

    assert NEW_TIER not in html
    assert update_url(ladder[1]) not in html


def test_the_menu_lists_tiers_for_those_who_may_see_them(client):
    client.force_login(grant(StaffFactory(), "view_tier"))
    assert f'href="{TIERS}"' in html_of(client.get("/shop/dashboard/"))

    client.force_login(grant(StaffFactory(), "view_member"))
    assert f'href="{TIERS}"' not in html_of(client.get("/shop/dashboard/"))


# The list ----------------------------------------------------------------------------


def test_the_list_shows_each_tier_with_its_benefits_and_members(client, owner, ladder):
    regular, silver, gold = ladder
    for tier in (regular, regular, silver, gold, gold, gold):
        new_member(tier)
    new_member(None)

    response = client.get(TIERS)

    assert response.status_code == 200
    html = html_of(response)
    gold_row = html[html.index('id="loyalty-tier-gold"') :]
    gold_row = gold_row[: gold_row.index("</tr>")]
    for text in ("Gold", "gold", "G", "#d4af37", "¥5,000.00", "× 1.50", ">5%<", "Yes"):
        assert text in gold_row, text
    assert 'class="text-right loyalty-member-count">3<' in gold_row
    assert update_url(gold) in gold_row
    silver_row = html[html.index('id="loyalty-tier-silver"') :]
    assert 'loyalty-member-count">1<' in silver_row[: silver_row.index("</tr>")]
    regular_row = html[html.index('id="loyalty-tier-regular"') :]
    assert 'loyalty-member-count">2<' in regular_row[: regular_row.index("</tr>")]
    assert 'id="loyalty-members-without-tier">1<' in html
    # By rank.
    assert html.index("loyalty-tier-regular") < html.index("loyalty-tier-silver")
    assert html.index("loyalty-tier-silver") < html.index("loyalty-tier-gold")
    assert NEW_TIER in html


def test_the_list_shows_how_members_qualify(client, owner, ladder, settings):
    html = html_of(client.get(TIERS))
    basis = html[
        html.index('id="loyalty-tier-basis"') : html.index('id="loyalty-tiers"')
    ]
    assert "Spend" in basis
    assert "The last 12 months (rolling)" in basis
    assert ">30<" in basis
    assert "Threshold (spend in CNY)" in html

    settings.OSCAR_LOYALTY_TIER_BASIS = "points"
    settings.OSCAR_LOYALTY_TIER_WINDOW = "calendar_year"
    settings.OSCAR_LOYALTY_TIER_GRACE_DAYS = 0
    html = html_of(client.get(TIERS))
    basis = html[
        html.index('id="loyalty-tier-basis"') : html.index('id="loyalty-tiers"')
    ]
    assert "Points earned" in basis
    assert "The current calendar year" in basis
    assert ">0<" in basis
    assert "Threshold (points)" in html
    gold_row = html[html.index('id="loyalty-tier-gold"') :]
    assert ">5000<" in gold_row[: gold_row.index("</tr>")]
    assert "¥" not in gold_row[: gold_row.index("</tr>")]

    settings.OSCAR_LOYALTY_TIER_BASIS = "orders"
    assert "Threshold (orders)" in html_of(client.get(TIERS))


def test_the_list_without_tiers_says_so(client, owner):
    assert "No tiers yet" in html_of(client.get(TIERS))


def test_the_list_runs_the_same_queries_for_one_tier_or_three(
    client, owner, django_assert_max_num_queries
):
    regular = Tier.objects.create(code="regular", name="Regular", rank=1)
    new_member(regular)
    client.get(TIERS)  # the session and permissions are cached from here on
    with django_assert_max_num_queries(1000) as one_tier:
        client.get(TIERS)

    silver = Tier.objects.create(code="silver", name="Silver", rank=2, threshold=10)
    gold = Tier.objects.create(code="gold", name="Gold", rank=3, threshold=20)
    for tier in (silver, gold, gold):
        new_member(tier)
    with django_assert_max_num_queries(len(one_tier.captured_queries)):
        response = client.get(TIERS)

    assert [tier.member_count for tier in response.context["tiers"]] == [1, 1, 2]


# Creating and editing ----------------------------------------------------------------


def test_a_new_tier_is_saved_with_its_group_and_logged(
    client, owner, ladder, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(NEW_TIER, tier_data(), follow=True)

    assert response.redirect_chain == [(TIERS, 302)]
    assert "Tier “Platinum” created." in html_of(response)
    tier = Tier.objects.get(code="platinum")
    assert (tier.name, tier.rank, tier.threshold) == ("Platinum", 4, Decimal("8000"))
    assert (tier.points_multiplier, tier.discount_percent) == (Decimal(2), Decimal(10))
    assert tier.free_shipping and tier.badge == "P" and tier.colour == "#e5e4e2"
    assert tier.group == Group.objects.get(name="loyalty:platinum")
    entry = LogEntry.objects.get()
    assert (entry.user_id, entry.action_flag) == (owner.pk, ADDITION)
    assert entry.object_id == str(tier.pk)
    assert "code: platinum" in entry.change_message
    assert "threshold: 8000.00" in entry.change_message


def test_the_lowest_tier_may_ask_for_nothing(client, owner):
    response = client.post(NEW_TIER, tier_data(code="regular", rank="1", threshold="0"))

    assert response.status_code == 302
    assert Tier.objects.get().threshold == 0


def test_editing_a_tier_logs_each_change_before_and_after(client, owner, ladder):
    gold = ladder[2]

    response = client.post(
        update_url(gold),
        tier_data(
            code="gold",
            name="Gold",
            rank="3",
            threshold="6000",
            points_multiplier="1.5",
            discount_percent="8",
            badge="G",
            colour="#d4af37",
            description="",
        ),
        follow=True,
    )

    assert response.redirect_chain == [(TIERS, 302)]
    assert "Tier “Gold” saved." in html_of(response)
    gold.refresh_from_db()
    assert (gold.threshold, gold.discount_percent) == (Decimal(6000), Decimal(8))
    entry = LogEntry.objects.get()
    assert (entry.user_id, entry.action_flag) == (owner.pk, CHANGE)
    assert "threshold: 5000.00 → 6000.00" in entry.change_message
    assert "discount_percent: 5.00 → 8.00" in entry.change_message
    assert "name:" not in entry.change_message


def test_the_code_cannot_be_changed_on_edit(client, owner, ladder):
    silver = ladder[1]
    form = client.get(update_url(silver)).context["form"]
    assert form.fields["code"].disabled

    response = client.post(
        update_url(silver),
        tier_data(code="argent", name="Silver", rank="2", threshold="1000"),
    )

    assert response.status_code == 302
    silver.refresh_from_db()
    assert silver.code == "silver"
    assert not Tier.objects.filter(code="argent").exists()
    assert "code" not in LogEntry.objects.get().change_message


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"rank": "2"}, "rank", "Rank 2 is already taken by Silver."),
        (
            {"rank": "4", "threshold": "4000"},
            "threshold",
            "Thresholds rise with rank: this one must be above CN¥5,000.00, the "
            "threshold of Gold (rank 3).",
        ),
        (
            {"rank": "4", "threshold": "5000"},
            "threshold",
            "Thresholds rise with rank: this one must be above CN¥5,000.00",
        ),
        (
            {"rank": "0", "threshold": "500"},
            "threshold",
            "Thresholds rise with rank: this one must be below CN¥0.00, the "
            "threshold of Regular (rank 1).",
        ),
        ({"threshold": "-1"}, "threshold", "The threshold cannot be negative."),
        (
            {"discount_percent": "150"},
            "discount_percent",
            "The discount must be between 0 and 100 percent.",
        ),
        (
            {"discount_percent": "-1"},
            "discount_percent",
            "The discount must be between 0 and 100 percent.",
        ),
        (
            {"points_multiplier": "11"},
            "points_multiplier",
            "The points multiplier must be between 0 and 10.",
        ),
        (
            {"colour": "gold"},
            "colour",
            "Enter a colour as # and six hex digits, e.g. #d4af37.",
        ),
        (
            {"colour": "#12345g"},
            "colour",
            "Enter a colour as # and six hex digits, e.g. #d4af37.",
        ),
        ({"code": "gold"}, "code", "Another tier already has this code."),
        ({"code": "Plat inum"}, "code", "Use only lower-case letters, numbers"),
        ({"code": "Platinum"}, "code", "Use only lower-case letters, numbers"),
        ({"name": ""}, "name", "This field is required."),
        ({"threshold": "ten"}, "threshold", "Enter a number."),
    ],
)
def test_a_bad_new_tier_is_shown_on_the_form_and_saves_nothing(
    client, owner, ladder, fields, field, message
):
    before = snapshot()
    groups = Group.objects.count()

    response = client.post(NEW_TIER, tier_data(**fields))

    assert response.status_code == 200
    assert message in " ".join(response.context["form"].errors[field])
    assert message in html_of(response)
    assert snapshot() == before
    assert Group.objects.count() == groups
    assert not LogEntry.objects.exists()


def test_a_whole_number_threshold_is_needed_on_the_points_basis(
    client, owner, ladder, settings
):
    settings.OSCAR_LOYALTY_TIER_BASIS = "points"
    before = snapshot()

    response = client.post(NEW_TIER, tier_data(threshold="8000.5"))

    assert "Enter a whole number" in html_of(response)
    assert snapshot() == before


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"rank": "3"}, "Rank 3 is already taken by Gold."),
        (
            {"threshold": "6000"},
            "Thresholds rise with rank: this one must be below CN¥5,000.00, the "
            "threshold of Gold (rank 3).",
        ),
        (
            {"threshold": "0"},
            "Thresholds rise with rank: this one must be above CN¥0.00, the "
            "threshold of Regular (rank 1).",
        ),
        ({"discount_percent": "150"}, "between 0 and 100 percent"),
        ({"colour": "#fff"}, "Enter a colour as # and six hex digits"),
    ],
)
def test_a_bad_edit_is_shown_on_the_form_and_changes_nothing(
    client, owner, ladder, fields, message
):
    silver = ladder[1]
    before = snapshot()
    data = tier_data(code="silver", name="Silver", rank="2", threshold="1000")

    response = client.post(update_url(silver), {**data, **fields})

    assert response.status_code == 200
    assert message in html_of(response)
    assert snapshot() == before
    assert not LogEntry.objects.exists()


def test_a_tier_keeps_its_own_rank_and_threshold_on_edit(client, owner, ladder):
    silver = ladder[1]

    response = client.post(
        update_url(silver),
        tier_data(code="silver", name="Argent", rank="2", threshold="1000"),
    )

    assert response.status_code == 302
    silver.refresh_from_db()
    assert silver.name == "Argent"


def test_a_rank_moved_between_others_checks_thresholds_at_the_new_place(
    client, owner, ladder
):
    regular, silver, gold = ladder

    ok = client.post(
        update_url(silver),
        tier_data(code="silver", name="Silver", rank="5", threshold="9000"),
    )
    assert ok.status_code == 302
    silver.refresh_from_db()
    assert (silver.rank, silver.threshold) == (5, Decimal(9000))

    refused = client.post(
        update_url(silver),
        tier_data(code="silver", name="Silver", rank="2", threshold="9000"),
    )
    assert "must be below CN¥5,000.00" in html_of(refused)
    silver.refresh_from_db()
    assert silver.rank == 5


def test_an_unknown_tier_is_not_found(client, owner):
    url = reverse("loyalty_dashboard:loyalty-tier-update", kwargs={"pk": 999999})

    assert client.get(url).status_code == 404


# A member's tier ---------------------------------------------------------------------


def test_a_members_page_shows_their_tier_value_and_history(
    client, viewer, ladder, desk
):
    regular, silver, gold = ladder
    member = new_member(regular)
    OrderActivity.objects.create(
        member=member,
        order_number="T-1",
        placed_at=timezone.now() - timedelta(days=3),
        confirmed_at=timezone.now() - timedelta(days=2),
        spend=Decimal("1234.50"),
    )
    actor = ledger.Actor.from_user(desk)
    tiers.set_tier(member=member, tier=silver, reason="Early upgrade", actor=actor)
    tiers.set_tier(
        member=member,
        tier=gold,
        reason="VIP event",
        actor=actor,
        protect_until=timezone.now() + timedelta(days=90),
    )
    client.force_login(viewer)

    response = client.get(detail_url(member))

    assert response.status_code == 200
    html = html_of(response)
    card = html[html.index('id="loyalty-member-tier"') :]
    card = card[: card.index("</table>")]
    assert "Gold" in card and "#d4af37" in card and "since" in card
    assert "Protected until" in card
    assert "¥1,234.50" in card
    assert "Spend" in card and "The last 12 months (rolling)" in card
    history = html[html.index('id="loyalty-tier-history"') :]
    history = history[: history.index("</table>")]
    for text in (
        "Silver → Gold",
        "Regular → Silver",
        "Set by staff",
        "VIP event",
        "Early upgrade",
        "Tia Desk",
    ):
        assert text in history, text
    assert history.index("VIP event") < history.index("Early upgrade")  # newest first
    # Without the permission: no form.
    assert 'id="loyalty-set-tier"' not in html
    assert set_tier_url(member) not in html


def test_a_members_tier_history_is_read_in_one_query_and_shows_twenty(
    client, viewer, ladder
):
    regular, silver, _gold = ladder
    member = new_member(regular)
    for number in range(25):
        tiers.set_tier(
            member=member,
            tier=silver if number % 2 == 0 else regular,
            reason=f"Change {number}",
            actor=ledger.SYSTEM,
        )
    client.get(detail_url(member))

    with django_queries() as queries:
        response = client.get(detail_url(member))

    assert len(response.context["tier_history"]) == 20
    assert response.context["tier_history"][0].reason == "Change 24"
    history_queries = [q for q in queries if "oscar_loyalty_tierchange" in q["sql"]]
    assert len(history_queries) == 1
    assert "Change 24" in html_of(response) and "Change 4" not in html_of(response)


def django_queries():
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    return CaptureQueriesContext(connection)


def test_a_member_without_a_tier_says_so(client, viewer):
    member = new_member(None)

    html = html_of(client.get(detail_url(member)))

    card = html[html.index('id="loyalty-member-tier"') :]
    assert "No tier" in card[: card.index("</table>")]
    assert "No tier changes yet." in html


# Setting a member's tier -------------------------------------------------------------


def test_staff_set_a_tier_with_a_reason_and_their_name_is_recorded(
    client, desk, ladder, django_capture_on_commit_callbacks
):
    regular, _silver, gold = ladder
    member = new_member(regular)
    page = html_of(client.get(detail_url(member)))
    assert 'id="loyalty-set-tier"' in page and set_tier_url(member) in page

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(
            set_tier_url(member),
            {"tier": gold.pk, "reason": " Complaint goodwill ", "protect_until": ""},
            follow=True,
        )

    assert response.redirect_chain == [(detail_url(member), 302)]
    assert f"Member {member.number} is now in Gold." in html_of(response)
    member.refresh_from_db()
    assert member.tier == gold and member.tier_protected_until is None
    change = TierChange.objects.get()
    assert (change.from_tier, change.to_tier) == (regular, gold)
    assert change.kind == TierChange.Kind.STAFF
    assert change.reason == "Complaint goodwill"
    assert (change.actor_id, change.actor_name) == (desk.pk, "Tia Desk")
    assert member.user.groups.filter(name="loyalty:gold").exists()


def test_a_protection_date_protects_until_the_end_of_that_day_in_the_shop(
    client, desk, ladder
):
    _regular, silver, _gold = ladder
    member = new_member(None)
    day = (timezone.localtime() + timedelta(days=60)).date()

    response = client.post(
        set_tier_url(member),
        {"tier": silver.pk, "reason": "Moved abroad", "protect_until": day.isoformat()},
    )

    assert response.status_code == 302
    member.refresh_from_db()
    shop = timezone.get_default_timezone()
    assert member.tier_protected_until == datetime.combine(day, time.max, tzinfo=shop)
    assert TierChange.objects.get().protected_until == member.tier_protected_until


def test_staff_take_a_member_out_of_every_tier(client, desk, ladder):
    member = new_member(ladder[1])

    response = client.post(
        set_tier_url(member), {"tier": "", "reason": "Closed account"}, follow=True
    )

    assert f"Member {member.number} now has no tier." in html_of(response)
    assert Member.objects.get(pk=member.pk).tier is None
    assert TierChange.objects.get().to_tier is None


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"reason": ""}, "Give a reason for changing this member's tier."),
        ({"reason": "   "}, "Give a reason for changing this member's tier."),
        ({"protect_until": "YESTERDAY"}, "Tier protection must end in the future."),
        ({"protect_until": "TODAY"}, None),
        ({"protect_until": "not a date"}, "Enter a valid date."),
        ({"tier": "999999"}, "Select a valid choice."),
    ],
)
def test_a_bad_tier_change_is_shown_on_the_form_and_changes_nothing(
    client, desk, ladder, data, message
):
    regular, silver, _gold = ladder
    member = new_member(regular)
    state = member_state(member)
    today = timezone.localtime().date()
    days = {"YESTERDAY": today - timedelta(days=1), "TODAY": today}
    data = {"tier": silver.pk, "reason": "Because", **data}
    if data.get("protect_until") in days:
        data["protect_until"] = days[data["protect_until"]].isoformat()

    response = client.post(set_tier_url(member), data)

    if message is None:  # protected until the end of today: still in the future
        assert response.status_code == 302
        assert Member.objects.get(pk=member.pk).tier == silver
        return
    assert response.status_code == 200
    html = html_of(response)
    assert message in html
    assert 'id="loyalty-set-tier"' in html
    assert member_state(member) == state
    assert not TierChange.objects.exists()


def test_staff_without_the_set_tier_permission_are_refused(client, viewer, ladder):
    regular, _silver, gold = ladder
    member = new_member(regular)
    state = member_state(member)

    response = client.post(set_tier_url(member), {"tier": gold.pk, "reason": "Me"})

    assert response.status_code == 403
    assert member_state(member) == state
    assert not TierChange.objects.exists()


def test_setting_a_tier_needs_a_post(client, desk, ladder):
    regular, _silver, gold = ladder
    member = new_member(regular)
    state = member_state(member)

    response = client.get(set_tier_url(member), {"tier": gold.pk, "reason": "GET"})

    assert response.status_code == 405
    assert member_state(member) == state
    assert not TierChange.objects.exists()


def test_setting_a_tier_needs_the_csrf_token(desk, ladder):
    regular, _silver, gold = ladder
    member = new_member(regular)
    client = Client(enforce_csrf_checks=True)
    client.force_login(desk)

    response = client.post(set_tier_url(member), {"tier": gold.pk, "reason": "x"})

    assert response.status_code == 403
    assert Member.objects.get(pk=member.pk).tier == regular


def test_the_form_starts_from_the_members_tier_and_protection(client, desk, ladder):
    _regular, silver, _gold = ladder
    member = new_member(silver)
    until = timezone.now() + timedelta(days=10)
    Member.objects.filter(pk=member.pk).update(tier_protected_until=until)

    form = client.get(detail_url(member)).context["tier_form"]

    assert form.initial["tier"] == silver.pk
    assert form.initial["protect_until"] == timezone.localtime(until).date()
