"""Demo data for the example shop "Lotus & Co.", loaded by ``manage.py load_demo_data``.

The builder is split by subject: ``catalogue`` (categories, products, stock and the
Pillow-drawn ``images``), ``people`` (shipping country, staff, shoppers and their
address books), ``orders`` (order histories placed through Oscar's ``OrderCreator``),
``pages`` (the Wagtail page tree and both Site records) and ``loader``, which runs
them in order, each section in its own transaction.

This module imports no models, so the README, docs or a test can import
:data:`DEMO_USERS` without a configured app registry.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class DemoUser:
    """One demo login: who it is, how to sign in and what it is there to show."""

    username: str
    email: str
    password: str
    first_name: str
    last_name: str
    role: str  # "admin", "editor" or "shopper"
    description: str


ADMIN = DemoUser(
    username="admin",
    email="admin@example.com",
    password="admin",
    first_name="Ada",
    last_name="Admin",
    role="admin",
    description="staff superuser: Oscar dashboard /shop/dashboard/, Wagtail /cms/",
)
EDITOR = DemoUser(
    username="editor",
    email="editor@example.com",
    password="editor",
    first_name="Yan",
    last_name="Zhou",
    role="editor",
    description="content editor (Wagtail 'Editors' group): /cms/ only",
)
SHOPPERS = (
    DemoUser(
        username="mei",
        email="mei@example.com",
        password="shopper",
        first_name="Mei",
        last_name="Lin",
        role="shopper",
        description="frequent buyer in Shanghai: 15 orders over 18 months",
    ),
    DemoUser(
        username="wei",
        email="wei@example.com",
        password="shopper",
        first_name="Wei",
        last_name="Wang",
        role="shopper",
        description="regular in Beijing: 7 orders, the last a few weeks ago",
    ),
    DemoUser(
        username="li",
        email="li@example.com",
        password="shopper",
        first_name="Jing",
        last_name="Li",
        role="shopper",
        description="lapsed in Hangzhou: 5 orders, none in the last 10 months",
    ),
    DemoUser(
        username="chen",
        email="chen@example.com",
        password="shopper",
        first_name="Hao",
        last_name="Chen",
        role="shopper",
        description="new in Guangzhou: 1 order, placed this week",
    ),
    DemoUser(
        username="zhang",
        email="zhang@example.com",
        password="shopper",
        first_name="Yu",
        last_name="Zhang",
        role="shopper",
        description="occasional in Chengdu: 3 orders, mostly teaware and ceramics",
    ),
)

#: Every demo login, in the order the command prints them.
DEMO_USERS = (ADMIN, EDITOR, *SHOPPERS)
