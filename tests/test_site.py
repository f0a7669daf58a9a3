"""The example shop's URL layout, its language switcher and DATABASE_URL parsing."""

from pathlib import Path

import pytest

from example_shop.settings.env import database_from_url

DEFAULT_SQLITE = Path("/srv/shop/var/db.sqlite3")


# URL layout ---------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("url", "redirect"),
    [
        ("/shop/", "/shop/catalogue/"),
        ("/shop/dashboard/", "/shop/dashboard/login/?next=/shop/dashboard/"),
        ("/cms/", "/cms/login/?next=/cms/"),
        ("/django-admin/", "/django-admin/login/?next=/django-admin/"),
    ],
    ids=["shop-home", "oscar-dashboard", "wagtail-admin", "django-admin"],
)
def test_an_anonymous_visitor_is_redirected(client, url, redirect):
    response = client.get(url)

    assert response.status_code == 302
    assert response.url == redirect


@pytest.mark.django_db
def test_the_catalogue_is_served_under_shop(client):
    response = client.get("/shop/catalogue/")

    assert response.status_code == 200
    assert 'lang="en"' in response.content.decode()


@pytest.mark.django_db
def test_a_shopper_who_picks_chinese_gets_the_shop_in_chinese(client):
    page = client.get("/shop/catalogue/").content.decode()
    assert 'id="language_selector"' in page
    assert '<option value="zh-hans"' in page

    response = client.post(
        "/i18n/setlang/", {"language": "zh-hans", "next": "/shop/catalogue/"}
    )
    assert response.status_code == 302
    assert response.url == "/shop/catalogue/"

    html = client.get("/shop/catalogue/").content.decode()
    assert '<html lang="zh-hans"' in html
    assert "浏览商店" in html  # Oscar's "Browse store"
    assert "购物车" in html  # Oscar's "Basket"
    assert "Browse store" not in html


@pytest.mark.django_db
def test_switching_back_to_english_restores_english(client):
    client.post("/i18n/setlang/", {"language": "zh-hans"})
    client.post("/i18n/setlang/", {"language": "en"})

    html = client.get("/shop/catalogue/").content.decode()

    assert '<html lang="en"' in html
    assert "Browse store" in html


# DATABASE_URL -------------------------------------------------------------------------


def test_a_postgres_url_gives_every_connection_setting():
    config = database_from_url(
        "postgres://user:pw@host:5433/name", sqlite_default=DEFAULT_SQLITE
    )

    assert config == {
        "ENGINE": "django.db.backends.postgresql",
        "NAME": "name",
        "USER": "user",
        "PASSWORD": "pw",
        "HOST": "host",
        "PORT": "5433",
        "CONN_MAX_AGE": 60,
        "CONN_HEALTH_CHECKS": True,
    }


def test_a_postgresql_url_decodes_its_parts_and_passes_query_options_on():
    config = database_from_url(
        "postgresql://shop%40eu:p%2Fw%3Ad@db.example.com/lotus%20shop"
        "?sslmode=require&conn_max_age=0",
        sqlite_default=DEFAULT_SQLITE,
    )

    assert config["ENGINE"] == "django.db.backends.postgresql"
    assert (config["USER"], config["PASSWORD"]) == ("shop@eu", "p/w:d")
    assert (config["HOST"], config["PORT"]) == ("db.example.com", "")
    assert config["NAME"] == "lotus shop"
    assert config["CONN_MAX_AGE"] == 0
    assert config["OPTIONS"] == {"sslmode": "require"}


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("sqlite:///relative.db", "relative.db"),
        ("sqlite:///var/shop.db", "var/shop.db"),
        ("sqlite:////abs/path.db", "/abs/path.db"),
        ("sqlite://", str(DEFAULT_SQLITE)),
    ],
)
def test_a_sqlite_url_names_a_relative_or_absolute_file(url, name):
    config = database_from_url(url, sqlite_default=DEFAULT_SQLITE)

    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert config["NAME"] == name


@pytest.mark.parametrize("url", [None, ""])
def test_without_a_url_the_embedded_sqlite_file_is_used_in_wal_mode(url):
    config = database_from_url(url, sqlite_default=DEFAULT_SQLITE)

    assert config["ENGINE"] == "django.db.backends.sqlite3"
    assert config["NAME"] == str(DEFAULT_SQLITE)
    assert config["OPTIONS"]["transaction_mode"] == "IMMEDIATE"
    assert "PRAGMA journal_mode=WAL" in config["OPTIONS"]["init_command"]


@pytest.mark.parametrize("scheme", ["mysql", "oracle"])
def test_an_unsupported_scheme_is_refused_by_name(scheme):
    with pytest.raises(ValueError, match=f"'{scheme}'"):
        database_from_url(
            f"{scheme}://user:pw@host/name", sqlite_default=DEFAULT_SQLITE
        )
