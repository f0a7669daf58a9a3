"""The Wagtail page tree: page types, serving inside the shop's chrome, the CTA block.

The tree is the demo site's: the root, the example shop's ``HomePage`` at / and a
``MemberHomePage`` at /members/, served by Wagtail's real views on the example shop's
URLs and rendered with Oscar's header (mini-basket, navigation, language selector).
"""

from html import unescape

import pytest
from django.urls import reverse
from wagtail.blocks import StructBlockValidationError
from wagtail.models import Page, Site
from wagtail.test.utils import WagtailPageTestCase
from wagtail.test.utils.form_data import (
    nested_form_data,
    querydict_from_html,
    rich_text,
    streamfield,
)

from example_shop.models import HomePage
from wagtail_members.blocks import CallToActionBlock
from wagtail_members.models import MemberHomePage

CTA = {
    "title": "Join the club",
    "text": "Earn points on every order.",
    "button_label": "Join now",
    "page": None,
    "url": "/shop/accounts/register/",
}


def make_home_page():
    """Replace Wagtail's "Welcome" page with the shop's HomePage as the site root."""
    root = Page.get_first_root_node()
    home = root.add_child(
        instance=HomePage(title="Lotus & Co.", slug="lotus-home", intro="<p>Hi</p>")
    )
    # Saved, not updated: saving clears Wagtail's cached site root paths, which an
    # earlier test's pages (with other ids, on PostgreSQL) may still fill.
    site = Site.objects.filter(is_default_site=True).first() or Site(
        hostname="localhost", port=80, is_default_site=True
    )
    site.root_page = home
    site.save()
    root.get_children().exclude(pk=home.pk).delete()
    return home


def make_member_home_page(parent, slug="members"):
    page = MemberHomePage(
        title="Members' Club",
        slug=slug,
        intro="<p>Points on every order, prices for members.</p>",
        body=[("heading", "Why join"), ("call_to_action", CTA)],
    )
    parent.add_child(instance=page)
    return page


@pytest.fixture
def home(db):
    return make_home_page()


@pytest.fixture
def members(home):
    return make_member_home_page(home)


def html_of(response):
    assert response.status_code == 200, response
    return unescape(response.content.decode())


def assert_in_shop_chrome(html):
    assert 'id="language_selector"' in html, "no language selector in the header"
    assert "Browse store" in html, "no Oscar primary navigation"
    assert 'class="basket-mini' in html, "no Oscar mini-basket"
    assert 'href="/shop/catalogue/"' in html


def admin_form_data(client, page):
    """The page's edit form as an editor would submit it, StreamField included.

    Wagtail renders StreamFields with JavaScript, so the HTML form alone lacks them;
    the body is added from the page's stored value.
    """
    html = client.get(reverse("wagtailadmin_pages:edit", args=[page.pk])).content
    data = querydict_from_html(html.decode(), form_id="page-edit-form").copy()
    items = []
    for child in page.body:
        value = child.value
        if child.block_type == "call_to_action":
            value = {**value, "page": value["page"].pk if value["page"] else ""}
        items.append((child.block_type, value))
    for key, value in nested_form_data({"body": streamfield(items)}).items():
        data[key] = value
    return data


# Page types ---------------------------------------------------------------------------


class TestPageTypes(WagtailPageTestCase):
    @classmethod
    def setUpTestData(cls):
        cls.home = make_home_page()

    def test_the_home_page_can_only_be_created_under_the_root(self):
        self.assertAllowedParentPageTypes(HomePage, {Page})
        self.assertCanCreateAt(Page, HomePage)
        self.assertCanNotCreateAt(HomePage, HomePage)
        self.assertCanNotCreateAt(MemberHomePage, HomePage)

    def test_a_member_home_page_can_be_created_under_the_home_page(self):
        self.assertCanCreateAt(HomePage, MemberHomePage)
        assert MemberHomePage.can_create_at(self.home)

    def test_a_parent_holds_at_most_one_member_home_page(self):
        make_member_home_page(self.home)

        assert not MemberHomePage.can_create_at(self.home)

    def test_an_editor_creates_a_member_page_with_a_call_to_action_in_the_admin(self):
        self.login()
        data = nested_form_data(
            {
                "title": "Members' Club",
                "slug": "members",
                "intro": rich_text("<p>Join us.</p>"),
                "body": streamfield(
                    [
                        ("heading", "Why join"),
                        ("call_to_action", {**CTA, "page": ""}),
                    ]
                ),
            }
        )

        self.assertCanCreate(self.home, MemberHomePage, data)

        page = MemberHomePage.objects.get(slug="members")
        assert page.live
        assert page.body[1].value["url"] == "/shop/accounts/register/"

    def test_the_admin_refuses_a_call_to_action_with_a_javascript_url(self):
        self.login()
        data = nested_form_data(
            {
                "title": "Members' Club",
                "slug": "members",
                "body": streamfield(
                    [("call_to_action", {**CTA, "page": "", "url": "javascript:x()"})]
                ),
                "action-publish": "action-publish",
            }
        )
        add_url = reverse(
            "wagtailadmin_pages:add",
            args=["wagtail_members", "memberhomepage", self.home.pk],
        )

        response = self.client.post(add_url, data)

        assert response.status_code == 200
        assert response.context["form"].errors
        assert not MemberHomePage.objects.exists()

    def test_a_superuser_edits_and_publishes_the_member_page_in_the_admin(self):
        page = make_member_home_page(self.home)
        self.client.force_login(self.create_superuser("editor"))
        data = admin_form_data(self.client, page)
        data["title"] = "The Lotus Club"
        data["action-publish"] = "action-publish"

        response = self.client.post(
            reverse("wagtailadmin_pages:edit", args=[page.pk]), data
        )

        assert response.status_code == 302, response.context["form"].errors
        page.refresh_from_db()
        assert page.title == "The Lotus Club"
        assert [child.block_type for child in page.body] == [
            "heading",
            "call_to_action",
        ]

    def test_the_member_page_is_editable_and_previewable_by_a_superuser(self):
        page = make_member_home_page(self.home)
        self.client.force_login(self.create_superuser("editor"))
        data = admin_form_data(self.client, page)
        self.client.logout()

        self.assertPageIsEditable(page, post_data=data)
        self.assertPageIsPreviewable(page, post_data=data)
        self.assertPageIsRoutable(page)
        self.assertPageIsRenderable(page)

    def test_the_home_page_is_editable_and_previewable_by_a_superuser(self):
        self.client.force_login(self.create_superuser("editor"))
        data = admin_form_data(self.client, self.home)
        self.client.logout()

        self.assertPageIsEditable(self.home, post_data=data)
        self.assertPageIsPreviewable(self.home, post_data=data)


# Serving ------------------------------------------------------------------------------


def test_the_home_page_is_served_at_the_root_inside_the_shop_chrome(client, home):
    html = html_of(client.get("/"))

    assert '<h1 class="display-5">Lotus & Co.</h1>' in html
    assert_in_shop_chrome(html)


def test_the_members_nav_link_is_missing_while_there_is_no_members_page(client, home):
    html = html_of(client.get("/"))

    assert "Members' Club" not in html


def test_the_member_home_page_is_served_at_members_inside_the_shop_chrome(
    client, members
):
    html = html_of(client.get("/members/"))

    assert_in_shop_chrome(html)
    assert "Points on every order, prices for members." in html
    assert '<h2 class="mt-4">Why join</h2>' in html
    assert 'href="/shop/accounts/register/">Join now</a>' in html


def test_every_page_links_the_members_club_once_a_members_page_exists(client, members):
    for url in ("/", "/members/", "/shop/catalogue/"):
        html = html_of(client.get(url))
        assert 'href="/members/">Members\' Club</a>' in html, url


def test_a_call_to_action_to_a_page_links_to_that_page(client, home, members):
    home.body = [("call_to_action", {**CTA, "page": members, "url": ""})]
    home.save_revision().publish()

    html = html_of(client.get("/"))

    assert 'href="/members/">Join now</a>' in html


# The call-to-action block -------------------------------------------------------------


def cleaned(**changes):
    block = CallToActionBlock()
    return block.clean(block.to_python({**CTA, **changes}))


@pytest.mark.parametrize("url", ["", "   "])
def test_a_call_to_action_without_a_page_or_url_is_rejected(url):
    with pytest.raises(StructBlockValidationError) as error:
        cleaned(url=url)

    assert "url" in error.value.block_errors


@pytest.mark.parametrize(
    "url", ["javascript:alert(1)", "JavaScript:alert(1)", "data:text/html,x", "shop/"]
)
def test_a_call_to_action_with_a_script_or_relative_url_is_rejected(url):
    with pytest.raises(StructBlockValidationError) as error:
        cleaned(url=url)

    assert "url" in error.value.block_errors


@pytest.mark.parametrize(
    "url",
    ["/shop/accounts/register/", "/shop/catalogue/", "https://example.com/join"],
)
def test_a_call_to_action_to_a_path_or_web_url_is_accepted(url):
    assert cleaned(url=url)["url"] == url


def test_a_call_to_action_to_a_page_needs_no_url(members):
    assert cleaned(page=members.pk, url="")["page"].specific == members
