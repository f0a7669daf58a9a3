"""The loyalty programme's overview inside Oscar's dashboard (staff only)."""

from html import unescape

import pytest
from django.urls import reverse

from tests.factories import StaffFactory, UserFactory

pytestmark = pytest.mark.django_db

OVERVIEW = "/shop/dashboard/loyalty/"


def test_the_overview_is_mounted_under_oscars_dashboard():
    assert reverse("loyalty_dashboard:loyalty-overview") == OVERVIEW


def test_staff_see_the_programme_name_and_a_healthy_installation(client):
    client.force_login(StaffFactory())

    response = client.get(reverse("loyalty_dashboard:loyalty-overview"))

    assert response.status_code == 200
    html = unescape(response.content.decode())
    assert "<h1>Members' Club</h1>" in html
    assert "The loyalty programme is installed correctly." in html
    assert 'id="loyalty-check-messages"' not in html
    assert "OSCAR_LOYALTY_PROGRAMME_NAME" in html
    assert response.context["database_vendor"] in html
    assert "Run in the web process (no worker configured)" in html


def test_the_overview_shows_a_programme_name_set_in_settings(client, settings):
    settings.OSCAR_LOYALTY_PROGRAMME_NAME = "Lotus Club"
    client.force_login(StaffFactory())

    response = client.get(OVERVIEW)

    assert response.status_code == 200
    html = unescape(response.content.decode())
    assert "<h1>Lotus Club</h1>" in html
    assert "Members' Club" not in html


def test_the_overview_lists_installation_problems(client, settings):
    settings.MIDDLEWARE = [
        entry for entry in settings.MIDDLEWARE if not entry.endswith("BasketMiddleware")
    ]
    client.force_login(StaffFactory())

    response = client.get(OVERVIEW)

    html = response.content.decode()
    assert 'id="loyalty-check-messages"' in html
    assert "oscar_loyalty.E003" in html
    assert "installed correctly" not in html


def test_a_signed_in_shopper_is_forbidden(client):
    client.force_login(UserFactory())

    response = client.get(OVERVIEW)

    assert response.status_code == 403


def test_an_inactive_staff_member_is_not_let_in(client):
    client.force_login(StaffFactory(is_active=False))

    response = client.get(OVERVIEW)

    # Django's test client cannot sign in an inactive user with ModelBackend, so
    # the request is anonymous and goes to the dashboard's login.
    assert response.status_code == 302
    assert response.url.startswith("/shop/dashboard/login/")


def test_an_anonymous_visitor_is_sent_to_the_dashboard_login(client):
    response = client.get(OVERVIEW)

    assert response.status_code == 302
    assert response.url == f"/shop/dashboard/login/?next={OVERVIEW}"


def test_oscars_dashboard_menu_links_to_the_overview_for_staff(client):
    client.force_login(StaffFactory())

    response = client.get("/shop/dashboard/")

    assert response.status_code == 200
    html = unescape(response.content.decode())
    assert f'href="{OVERVIEW}"' in html
    assert "Programme overview" in html


def test_the_overview_says_whether_shoppers_can_pay_with_points(client):
    from oscar_loyalty.redemption import ensure_points_offer, points_offer

    client.force_login(StaffFactory())
    url = reverse("loyalty_dashboard:loyalty-overview")

    assert points_offer() is not None  # made by the migration
    assert "On</span>" in client.get(url).content.decode()

    offer = points_offer()
    offer.suspend()
    assert "suspended" in unescape(client.get(url).content.decode())

    offer.delete()
    assert "was deleted" in unescape(client.get(url).content.decode())
    assert ensure_points_offer().is_available()
