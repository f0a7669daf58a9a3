"""The owner's loyalty screens in Oscar's dashboard: members, their ledger, manual
adjustments, the points liability and earn rules.

Everything goes through Django's test client and Oscar's real URL permission
checks; points are written with the ledger services, as the shop would.
"""

import re
import uuid
from datetime import timedelta
from decimal import Decimal
from html import unescape

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone
from oscar.core.loading import get_model

from oscar_loyalty import consent
from oscar_loyalty.audit import find_drift
from oscar_loyalty.models import EarnRule, Member, Posting
from oscar_loyalty.services import holds, ledger
from oscar_loyalty.services.members import get_or_create_member
from tests.factories import StaffFactory, UserFactory

pytestmark = pytest.mark.django_db

Range = get_model("offer", "Range")

MEMBERS = reverse("loyalty_dashboard:loyalty-member-list")
LIABILITY = reverse("loyalty_dashboard:loyalty-liability")
EARN_RULES = reverse("loyalty_dashboard:loyalty-earnrule-list")
NEW_EARN_RULE = reverse("loyalty_dashboard:loyalty-earnrule-create")

SYSTEM = ledger.SYSTEM


@pytest.fixture(autouse=True)
def policy(settings):
    settings.OSCAR_LOYALTY_EXPIRY_MONTHS = 12
    settings.OSCAR_LOYALTY_EXPIRY_ROUNDING = "none"
    settings.OSCAR_LOYALTY_REDEEM_POINT_VALUE = "0.01"
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


def new_member(points=0, **user_fields):
    member = get_or_create_member(UserFactory(**user_fields))
    if points:
        ledger.adjust(member=member, points=points, reason="Opening", actor=SYSTEM)
    return Member.objects.get(pk=member.pk)


def detail_url(member):
    return reverse("loyalty_dashboard:loyalty-member-detail", kwargs={"pk": member.pk})


def adjust_url(member):
    return reverse("loyalty_dashboard:loyalty-member-adjust", kwargs={"pk": member.pk})


def balance(member):
    return Member.objects.get(pk=member.pk).available


@pytest.fixture
def viewer(client):
    """Staff who may look at members but not change their points."""
    user = grant(StaffFactory(first_name="Viv", last_name="Ewer"), "view_member")
    client.force_login(user)
    return user


@pytest.fixture
def adjuster(client):
    """Staff who may look at members and adjust their points."""
    user = grant(
        StaffFactory(first_name="Ada", last_name="Just"),
        "view_member",
        "adjust_points",
    )
    client.force_login(user)
    return user


@pytest.fixture
def member():
    return new_member(
        100, first_name="Mei", last_name="Lin", email="mei.lin@example.com"
    )


@pytest.fixture
def tea_range():
    return Range.objects.create(name="Tea", includes_all_products=True)


# Permissions -------------------------------------------------------------------------


def screens(member, rule):
    """(url, method, permissions that open it) for every screen but the overview."""
    return [
        (MEMBERS, "get", ["view_member"]),
        (detail_url(member), "get", ["view_member"]),
        (adjust_url(member), "post", ["view_member", "adjust_points"]),
        (LIABILITY, "get", ["view_member"]),
        (EARN_RULES, "get", ["view_earnrule"]),
        (NEW_EARN_RULE, "get", ["add_earnrule"]),
        (
            reverse("loyalty_dashboard:loyalty-earnrule-update", args=[rule.pk]),
            "get",
            ["change_earnrule"],
        ),
    ]


@pytest.fixture
def rule(tea_range):
    return EarnRule.objects.create(
        name="Double tea", range=tea_range, multiplier=Decimal("2")
    )


def test_anonymous_visitors_are_sent_to_the_dashboard_login(client, member, rule):
    for url, method, _perms in screens(member, rule):
        response = getattr(client, method)(url)

        assert response.status_code == 302, url
        assert response.url.startswith("/shop/dashboard/login/?next="), url


def test_staff_without_the_permission_are_refused(client, member, rule):
    client.force_login(StaffFactory())

    for url, method, _perms in screens(member, rule):
        response = getattr(client, method)(url, {"points": "5", "reason": "x"})

        assert response.status_code == 403, url
    assert balance(member) == 100


def test_a_shopper_with_the_permission_is_still_refused(client, member):
    client.force_login(grant(UserFactory(), "view_member"))

    assert client.get(MEMBERS).status_code == 403


def test_staff_with_the_permission_are_let_in(client, member, rule):
    for url, method, perms in screens(member, rule):
        client.force_login(grant(StaffFactory(), *perms))

        if method == "post":
            response = client.post(
                url, {"points": "5", "reason": "Test", "key": str(uuid.uuid4())}
            )
            assert response.status_code == 302, url
        else:
            assert client.get(url).status_code == 200, url


def test_those_who_may_change_earn_rules_may_list_them(client, rule):
    client.force_login(grant(StaffFactory(), "change_earnrule"))

    assert client.get(EARN_RULES).status_code == 200


def test_a_superuser_opens_every_screen(client, member, rule):
    client.force_login(StaffFactory(is_superuser=True))

    for url, method, _perms in screens(member, rule):
        if method == "get":
            assert client.get(url).status_code == 200, url


def test_the_menu_shows_only_the_screens_a_user_may_open(client):
    client.force_login(grant(StaffFactory(), "view_member"))

    html = html_of(client.get("/shop/dashboard/"))

    assert f'href="{MEMBERS}"' in html
    assert f'href="{LIABILITY}"' in html
    assert f'href="{EARN_RULES}"' not in html
    assert 'href="/shop/dashboard/loyalty/"' in html


# Members list and search -------------------------------------------------------------


def test_the_member_list_shows_balances_and_links_to_each_member(
    client, viewer, member
):
    ledger.earn(member=member, key="earn:1:1", points=30, order_number="1")

    response = client.get(MEMBERS)

    assert response.status_code == 200
    html = html_of(response)
    assert f'<a href="{detail_url(member)}">{member.number}</a>' in html
    assert "Mei Lin" in html
    assert "mei.lin@example.com" in html
    row = html[html.index(member.number) :]
    assert ">100<" in row and ">30<" in row and ">130<" in row


def loyalty_queries(client, url, **params):
    """The response and the SQL it ran on the plugin's tables.

    Oscar's own per-request queries (session, user, permissions, notifications)
    are left out: they are the same on every dashboard page.
    """
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url, params)
    return response, [
        query["sql"] for query in queries if "oscar_loyalty_" in query["sql"]
    ]


def test_the_member_list_runs_four_queries_however_many_members(client, viewer):
    from oscar_loyalty import scoring

    new_member()
    scoring.run()
    scoring.current_run()  # the newest run is cached, as in a running shop
    _response, few = loyalty_queries(client, MEMBERS)
    for _ in range(30):
        new_member()

    response, many = loyalty_queries(client, MEMBERS)

    # The tiers for the filter, the count and one page, the customers by join,
    # the page's segments: nothing per row.
    assert len(few) == len(many) == 4
    assert len(response.context["members"]) == 25
    assert response.context["paginator"].count == 31
    assert "Page 1 of 2" in html_of(response)


@pytest.mark.parametrize(
    "query",
    ["mei.lin@EXAMPLE", "lin", "Mei Lin", "MEMBER_NUMBER", "member_number_lower"],
)
def test_members_are_found_by_number_email_or_name(client, viewer, member, query):
    other = new_member(first_name="Bo", last_name="Chen", email="bo@example.com")
    if query == "MEMBER_NUMBER":
        query = member.number
    elif query == "member_number_lower":
        query = member.number[:6].lower()
        other.number = "X" + other.number[1:]  # so the prefix finds one member
        other.save(update_fields=["number"])

    response = client.get(MEMBERS, {"q": query})

    assert list(response.context["members"]) == [member]
    assert other.number not in html_of(response)


def test_a_search_that_matches_nobody_says_so(client, viewer, member):
    response = client.get(MEMBERS, {"q": "nobody-here"})

    assert list(response.context["members"]) == []
    assert "No members found." in html_of(response)


def test_a_search_too_long_to_be_a_name_finds_nobody_and_says_why(
    client, viewer, member
):
    response = client.get(MEMBERS, {"q": "m" * 101})

    assert list(response.context["members"]) == []
    assert "Ensure this value has at most 100 characters" in html_of(response)


# A member's page ---------------------------------------------------------------------


def test_a_members_page_shows_balances_expiring_lots_and_history(
    client, viewer, member, adjuster
):
    lot_posting = ledger.earn(
        member=member, key="earn:2001:7", points=40, order_number="2001"
    )
    ledger.confirm_lot(lot=lot_posting.entries.get().lot)
    ledger.adjust(
        member=member,
        points=-15,
        reason="Damaged voucher",
        actor=ledger.Actor.from_user(adjuster),
    )

    response = client.get(detail_url(member))

    assert response.status_code == 200
    html = html_of(response)
    assert f"Member {member.number}" in html
    assert 'id="loyalty-available">125<' in html
    history = html[html.index('id="loyalty-history"') :]
    for text in (
        "Adjusted by staff",
        "-15",
        "Damaged voucher",
        "Ada Just",
        "Confirmed",
        "+40",
        "Earned",
        "2001",
        "Opening",
        "+100",
    ):
        assert text in history, text
    # Newest first.
    assert history.index("Damaged voucher") < history.index("Opening")
    lots = html[html.index('id="loyalty-expiring-lots"') : html.index(history[:30])]
    assert ">85<" in lots  # the opening lot, 15 spent from it
    assert ">40<" in lots


def test_a_members_history_is_paginated(client, viewer, member):
    for number in range(30):
        ledger.adjust(member=member, points=1, reason=f"Bonus {number}", actor=SYSTEM)

    first = client.get(detail_url(member))
    second = client.get(detail_url(member), {"page": 2})

    assert len(first.context["history"]) == 25
    assert "Bonus 29" in html_of(first) and "Opening" not in html_of(first)
    assert "Opening" in html_of(second)
    assert "Page 2 of 2" in html_of(second)


def test_a_members_page_runs_the_same_queries_however_long_the_history(
    client, viewer, member
):
    from oscar_loyalty import scoring

    scoring.run()
    scoring.current_run()  # the newest run is cached, as in a running shop
    _response, short = loyalty_queries(client, detail_url(member))
    for number in range(40):
        ledger.adjust(member=member, points=1, reason=f"Bonus {number}", actor=SYSTEM)
        consent.record(member, {"email": number % 2 == 0}, source="account")

    _response, long = loyalty_queries(client, detail_url(member))

    # Member, history count, history page, its entries' sums, next lots to expire,
    # the qualifying value for tiers, the tier history, the member's coupons,
    # their referrals, the notes, the last change of each consent, the newest
    # consent changes and their current segments (their orders are Oscar's
    # table; the points of those orders one more query when they have any).
    assert len(short) == len(long) == 13


def test_an_unknown_member_is_not_found(client, viewer):
    url = reverse("loyalty_dashboard:loyalty-member-detail", kwargs={"pk": 999999})

    assert client.get(url).status_code == 404


def test_staff_who_may_not_adjust_see_no_adjustment_form(client, viewer, member):
    html = html_of(client.get(detail_url(member)))

    assert 'id="loyalty-adjustment"' not in html
    assert adjust_url(member) not in html


# Adjustments -------------------------------------------------------------------------


def form_key(client, member):
    """The idempotency key of the adjustment form as the page renders it."""
    form = client.get(detail_url(member)).context["adjustment_form"]
    return str(form.initial["key"])


def test_each_form_shown_has_a_new_key(client, adjuster, member):
    assert form_key(client, member) != form_key(client, member)


def test_staff_add_points_with_a_reason_and_their_name_is_recorded(
    client, adjuster, member
):
    response = client.post(
        adjust_url(member),
        {"points": "50", "reason": " Late delivery ", "key": form_key(client, member)},
        follow=True,
    )

    assert response.redirect_chain == [(detail_url(member), 302)]
    assert f"Added 50 points to member {member.number}." in html_of(response)
    assert balance(member) == 150
    posting = Posting.objects.filter(member=member).first()
    assert (posting.kind, posting.reason) == (Posting.Kind.ADJUST, "Late delivery")
    assert (posting.actor_id, posting.actor_name) == (adjuster.pk, "Ada Just")
    assert posting.key.startswith("adjust:")
    assert find_drift() == []


def test_staff_take_points_away(client, adjuster, member):
    response = client.post(
        adjust_url(member),
        {"points": "-30", "reason": "Returned gift", "key": form_key(client, member)},
        follow=True,
    )

    assert f"Took 30 points away from member {member.number}." in html_of(response)
    assert balance(member) == 70
    assert Posting.objects.filter(member=member).first().actor_name == "Ada Just"


@pytest.mark.parametrize(
    ("points", "reason", "message"),
    [
        ("50", "", "Give a reason for this adjustment."),
        ("50", "   ", "Give a reason for this adjustment."),
        ("0", "Oops", "Enter a number of points other than zero."),
        ("1.5", "Half", "Enter a whole number of points, such as 50."),
        ("ten", "Words", "Enter a whole number of points, such as 50."),
        ("", "Nothing", "This field is required."),
        ("99999999999999", "Huge", "Ensure this value is less than or equal to"),
        (
            "-101",
            "Too much",
            "This member has 100 points to spend: you can take away at most that many.",
        ),
    ],
)
def test_a_bad_adjustment_is_shown_on_the_form_and_writes_nothing(
    client, adjuster, member, points, reason, message
):
    postings = Posting.objects.count()

    response = client.post(
        adjust_url(member),
        {"points": points, "reason": reason, "key": form_key(client, member)},
    )

    assert response.status_code == 200
    html = html_of(response)
    assert message in html
    assert 'id="loyalty-adjustment"' in html
    assert balance(member) == 100
    assert Posting.objects.count() == postings


def test_points_held_at_checkout_cannot_be_taken_away(client, adjuster, member):
    holds.hold_points(member=member, basket_id=4242, points=60)

    response = client.post(
        adjust_url(member),
        {"points": "-50", "reason": "Too much", "key": form_key(client, member)},
    )

    assert "This member has 40 points to spend" in html_of(response)
    assert balance(member) == 100


def test_a_form_without_a_valid_key_is_refused(client, adjuster, member):
    for key in ("", "not-a-uuid"):
        response = client.post(
            adjust_url(member), {"points": "5", "reason": "Gift", "key": key}
        )

        assert "This form is out of date" in html_of(response)
    assert balance(member) == 100


def test_a_replayed_adjustment_is_written_once(client, adjuster, member):
    data = {"points": "25", "reason": "Birthday", "key": form_key(client, member)}

    client.post(adjust_url(member), data)
    replay = client.post(adjust_url(member), data, follow=True)

    assert balance(member) == 125
    assert Posting.objects.filter(reason="Birthday").count() == 1
    assert "This adjustment was already recorded; nothing was changed." in html_of(
        replay
    )


def test_adjusting_needs_a_post(client, adjuster, member):
    assert client.get(adjust_url(member)).status_code == 405


def test_adjusting_needs_the_csrf_token(adjuster, member):
    client = Client(enforce_csrf_checks=True)
    client.force_login(adjuster)

    response = client.post(
        adjust_url(member),
        {"points": "5", "reason": "Gift", "key": str(uuid.uuid4())},
    )

    assert response.status_code == 403
    assert balance(member) == 100


# Liability ---------------------------------------------------------------------------


def credit(member, points, expires_in_days):
    """``points`` to spend, expiring in ``expires_in_days``.

    With expiry set to 0 months a lot expires the moment it is credited, so
    crediting "at" a future moment gives the lot exactly that expiry.
    """
    moment = timezone.now() + timedelta(days=expires_in_days)
    with override_settings(OSCAR_LOYALTY_EXPIRY_MONTHS=0):
        ledger.adjust(
            member=member, points=points, reason="Test", actor=SYSTEM, now=moment
        )


def test_the_liability_is_outstanding_points_times_their_value(
    client, viewer, settings
):
    settings.OSCAR_LOYALTY_REDEEM_POINT_VALUE = "0.05"
    alice, bob, carol = new_member(), new_member(), new_member()
    new_member()  # no points at all
    credit(alice, 100, 10)
    credit(alice, 200, 45)
    credit(bob, 300, 80)
    credit(bob, 400, 200)
    credit(carol, 7, -1)  # past expiry, the expiry job has not run yet
    ledger.earn(member=carol, key="earn:9:1", points=50, order_number="9")
    holds.hold_points(member=bob, basket_id=77, points=100)

    response, queries = loyalty_queries(client, LIABILITY)

    assert len(queries) == 2  # one over members, one over expiring lots
    context = response.context
    assert context["totals"]["available"] == 1007
    assert context["totals"]["pending"] == 50
    assert context["totals"]["held"] == 100
    assert context["totals"]["members"] == 4
    assert context["totals"]["with_available"] == 3
    assert context["liability"] == Decimal("50.35")
    assert context["pending_value"] == Decimal("2.50")
    windows = {
        window["days"]: (window["points"], window["members"], window["value"])
        for window in context["expiry_windows"]
    }
    assert windows == {
        30: (107, 2, Decimal("5.35")),
        60: (307, 2, Decimal("15.35")),
        90: (607, 3, Decimal("30.35")),
    }
    assert context["overdue"]["points"] == 7
    html = html_of(response)
    assert "50.35" in html and "CN¥" in html
    assert "Past their expiry" in html


def test_an_empty_programme_has_no_liability(client, viewer):
    response = client.get(LIABILITY)

    assert response.status_code == 200
    assert response.context["liability"] == 0
    assert [w["points"] for w in response.context["expiry_windows"]] == [0, 0, 0]


# Earn rules --------------------------------------------------------------------------


@pytest.fixture
def rule_editor(client):
    user = grant(StaffFactory(), "view_earnrule", "add_earnrule", "change_earnrule")
    client.force_login(user)
    return user


def rule_data(tea_range, **changes):
    data = {
        "name": "Double tea",
        "range": tea_range.pk,
        "multiplier": "2",
        "starts_at": "",
        "ends_at": "",
        "is_active": "on",
    }
    data.update(changes)
    return {name: value for name, value in data.items() if value is not None}


def test_an_earn_rule_is_created_at_version_one(client, rule_editor, tea_range):
    response = client.post(NEW_EARN_RULE, rule_data(tea_range), follow=True)

    assert response.redirect_chain == [(EARN_RULES, 302)]
    rule = EarnRule.objects.get()
    assert (rule.name, rule.range, rule.multiplier) == (
        "Double tea",
        tea_range,
        Decimal("2.00"),
    )
    assert (rule.version, rule.is_active) == (1, True)
    html = html_of(response)
    assert "Earn rule “Double tea” created." in html
    assert "× 2.00" in html and "Running" in html
    from django.contrib.admin.models import LogEntry

    created = LogEntry.objects.get(object_id=str(rule.pk)).get_change_message()
    assert created.startswith("Created earn rule: name: Double tea; range: ")
    assert created.endswith("multiplier: 2.00; starts_at: —; ends_at: —; "
                            "is_active: True; version 1")  # fmt: skip


def test_every_save_of_an_earn_rule_is_a_new_version(
    client, rule_editor, tea_range, rule
):
    url = reverse("loyalty_dashboard:loyalty-earnrule-update", args=[rule.pk])

    first = client.post(url, rule_data(tea_range, multiplier="3"), follow=True)
    client.post(url, rule_data(tea_range, multiplier="3", is_active=None))

    rule.refresh_from_db()
    assert (rule.multiplier, rule.is_active, rule.version) == (Decimal("3"), False, 3)
    assert "Earn rule “Double tea” saved as version 2." in html_of(first)
    assert "Inactive" in html_of(client.get(EARN_RULES))
    from django.contrib.admin.models import LogEntry

    audit = LogEntry.objects.filter(object_id=str(rule.pk)).order_by("pk")
    assert [(e.user_id, e.get_change_message()) for e in audit] == [
        (rule_editor.pk, "Changed multiplier: 2.00 → 3.00; now version 2"),
        (rule_editor.pk, "Changed is_active: True → False; now version 3"),
    ]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"multiplier": "0"}, "The multiplier must be greater than zero."),
        ({"multiplier": "-1.5"}, "The multiplier must be greater than zero."),
        ({"multiplier": "lots"}, "Enter a number."),
        ({"name": ""}, "This field is required."),
        ({"range": ""}, "This field is required."),
        (
            {"starts_at": "2026-05-01 00:00", "ends_at": "2026-04-01 00:00"},
            "The end must be after the start.",
        ),
    ],
)
def test_a_bad_earn_rule_is_refused(
    client, rule_editor, tea_range, rule, changes, message
):
    url = reverse("loyalty_dashboard:loyalty-earnrule-update", args=[rule.pk])

    for target in (NEW_EARN_RULE, url):
        response = client.post(target, rule_data(tea_range, **changes))

        assert response.status_code == 200
        html = html_of(response)
        assert message in html
        assert "is violated" not in html
    rule.refresh_from_db()
    assert (EarnRule.objects.count(), rule.multiplier, rule.version) == (
        1,
        Decimal("2"),
        1,
    )


def test_earn_rules_cannot_be_deleted_from_the_dashboard(client, rule_editor, rule):
    html = html_of(client.get(EARN_RULES))
    table = html[html.index('id="loyalty-earn-rules"') :]

    assert "Double tea" in table
    assert "delete" not in table.lower()


def test_staff_who_may_only_view_rules_get_no_edit_links(client, rule):
    client.force_login(grant(StaffFactory(), "view_earnrule"))

    html = html_of(client.get(EARN_RULES))

    assert "Double tea" in html
    assert reverse("loyalty_dashboard:loyalty-earnrule-update", args=[rule.pk]) not in (
        html
    )
    assert NEW_EARN_RULE not in html


def test_the_member_list_shows_each_members_tier(client, viewer, member):
    from oscar_loyalty.models import Tier

    gold = Tier.objects.create(code="gold", name="Gold", rank=2, badge="G")
    Member.objects.filter(pk=member.pk).update(tier=gold)

    html = html_of(client.get(MEMBERS))

    row = html[html.index(member.number) :]
    assert "G Gold" in row[: row.index("</tr>")]


# Orders and notes on the member's page ------------------------------------------------


def test_a_members_page_lists_their_orders_with_the_points_each_earned(client, viewer):
    from tests.checkout import place_order
    from tests.factories import CountryFactory, ProductFactory

    CountryFactory()
    shopper = UserFactory()
    shop = Client()
    shop.force_login(shopper)
    first = place_order(shop, ProductFactory(stockrecord__price=88))
    second = place_order(shop, ProductFactory(stockrecord__price=120))
    member = Member.objects.get(user=shopper)

    html = html_of(client.get(detail_url(member)))

    table = html.split('id="loyalty-member-orders"')[1].split("</table>")[0]
    rows = re.findall(r"<tr>(.*?)</tr>", table, re.S)[1:]
    assert [re.findall(r">([^<>]+)</td>", row)[-1] for row in rows] == ["120", "88"]
    assert second.number in rows[0] and first.number in rows[1]  # newest first


def test_staff_leave_a_note_on_a_member_once_and_it_is_audited(client, member):
    from django.contrib.admin.models import LogEntry

    from oscar_loyalty.models import MemberNote

    writer = grant(StaffFactory(first_name="No", last_name="Ter"), "view_member",
                   "add_membernote")  # fmt: skip
    client.force_login(writer)
    page = html_of(client.get(detail_url(member)))
    key = re.search(r'name="key" value="([^"]+)"', page.split("loyalty-note-form")[1])[
        1
    ]
    url = reverse("loyalty_dashboard:loyalty-member-note", kwargs={"pk": member.pk})

    first = client.post(
        url, {"text": "Prefers calls <b>in the morning</b>", "key": key}
    )
    again = client.post(
        url, {"text": "Prefers calls <b>in the morning</b>", "key": key}
    )
    empty = client.post(url, {"text": "  ", "key": str(uuid.uuid4())})

    assert first.status_code == again.status_code == 302
    assert MemberNote.objects.filter(member=member).count() == 1
    assert "Write the note first." in html_of(empty)
    raw = client.get(detail_url(member)).content.decode()
    notes = raw.split('id="loyalty-member-notes"')[1]
    assert "Prefers calls &lt;b&gt;in the morning&lt;/b&gt;" in notes  # escaped
    assert "No Ter" in notes
    assert LogEntry.objects.get(object_id=str(member.pk)).get_change_message() == (
        "Added a note: Prefers calls <b>in the morning</b>"
    )


def test_staff_without_the_permission_see_notes_but_cannot_write_one(
    client, viewer, member
):
    url = reverse("loyalty_dashboard:loyalty-member-note", kwargs={"pk": member.pk})

    assert "loyalty-note-form" not in html_of(client.get(detail_url(member)))
    assert client.post(url, {"text": "x", "key": str(uuid.uuid4())}).status_code == 403
