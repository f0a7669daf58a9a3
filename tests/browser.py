"""Helpers for the browser tests: Debian's chromium, and the data Wagtail's migrations
would have made.

Browser tests run against ``live_server``, so their database access is transactional:
pytest-django empties every table after each such test (``flush``). Content types and
permissions come back (``flush`` re-sends ``post_migrate``), but the rows Wagtail's
data migrations made do not: the root page, the default ``Site``, the root collection,
the default locale and the "Editors" group. Whether they exist when a browser test
starts depends on which transactional tests ran before it, so the helpers here make
them when missing and reuse them otherwise.

``serialized_rollback=True`` would restore them too, but it serializes the whole
database at setup and makes the flush after the test skip ``post_migrate``, leaving
later transactional tests without content types or permissions.
"""

from django.contrib.auth.models import Group, Permission

from tests.conftest import chromium_path

CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-quic",
    "--no-first-run",
    "--disable-component-update",
    "--disable-sync",
)


def launch_chromium(playwright):
    """Debian's chromium, headless; Playwright's own browsers are not downloaded."""
    return playwright.chromium.launch(
        executable_path=chromium_path(), headless=True, args=list(CHROMIUM_ARGS)
    )


def wagtail_root_page():
    """The page tree's root node, made as Wagtail's migration does when missing."""
    from django.conf import settings
    from wagtail.coreutils import get_supported_content_language_variant
    from wagtail.models import Collection, Locale, Page

    Locale.objects.get_or_create(
        language_code=get_supported_content_language_variant(settings.LANGUAGE_CODE)
    )
    if Collection.get_first_root_node() is None:
        Collection.add_root(name="Root")
    root = Page.get_first_root_node()
    if root is None:
        root = Page.add_root(instance=Page(title="Root", slug="root"))
    return root


def home_page(title="Lotus & Co.", **fields):
    """The example shop's HomePage, served at / by the default Site."""
    from wagtail.models import Site

    from example_shop.models import HomePage

    root = wagtail_root_page()
    home = HomePage.objects.first()
    if home is None:
        # "home-page": the slug "home" may still belong to Wagtail's welcome page.
        home = root.add_child(
            instance=HomePage(title=title, slug="home-page", **fields)
        )
    site = Site.objects.filter(is_default_site=True).first() or Site(
        hostname="localhost", port=80, is_default_site=True
    )
    site.root_page = home
    site.site_name = title
    site.save()
    Site.clear_site_root_paths_cache()
    return home


def editors_group():
    """Wagtail's "Editors" group: admin access, and add/change pages under the root."""
    from wagtail.models import GroupPagePermission

    root = wagtail_root_page()
    group, _ = Group.objects.get_or_create(name="Editors")
    group.permissions.add(
        Permission.objects.get(
            content_type__app_label="wagtailadmin", codename="access_admin"
        )
    )
    for codename in ("add_page", "change_page"):
        GroupPagePermission.objects.get_or_create(
            group=group,
            page=root,
            permission=Permission.objects.get(
                content_type__app_label="wagtailcore", codename=codename
            ),
        )
    return group
