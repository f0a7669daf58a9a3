"""Migrations: none missing, all applied, and no needless ties to Oscar's latest ones.

See migrations/README.md for the policy these tests hold the apps to.
"""

from io import StringIO

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import connection
from django.db.migrations.executor import MigrationExecutor
from django.db.migrations.loader import MigrationLoader

OUR_APPS = ("oscar_loyalty", "wagtail_members", "example_shop")

#: (app, migration) -> the Oscar dependencies it may have beyond ``0001_initial``,
#: each with the reason (a field or model that first appears in that migration).
JUSTIFIED_LATER_OSCAR_DEPENDENCIES: dict[tuple[str, str], set[tuple[str, str]]] = {
    # The Points offer must be non-exclusive (Oscar's default is exclusive), and
    # ConditionalOffer.exclusive arrives in offer 0007 (2017: every Oscar 2+ shop).
    ("oscar_loyalty", "0003_points_redemption_offer"): {
        ("offer", "0007_conditionaloffer_exclusive")
    },
}


def oscar_app_labels():
    return {
        config.label
        for config in apps.get_app_configs()
        if config.name == "oscar" or config.name.startswith("oscar.")
    }


@pytest.fixture(scope="module")
def loader():
    return MigrationLoader(None, ignore_no_migrations=True)


def our_migrations(loader):
    return {
        key: migration
        for key, migration in loader.disk_migrations.items()
        if key[0] in OUR_APPS
    }


@pytest.mark.django_db
def test_every_model_change_has_a_migration():
    output = StringIO()

    try:
        call_command("makemigrations", "--check", "--dry-run", stdout=output)
    except SystemExit:  # pragma: no cover - the failure message is the point
        pytest.fail(f"models changed without a migration:\n{output.getvalue()}")

    assert "No changes detected" in output.getvalue()


@pytest.mark.django_db
def test_the_test_database_has_every_migration_applied():
    executor = MigrationExecutor(connection)

    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())

    assert plan == []
    applied = executor.loader.applied_migrations
    assert ("wagtail_members", "0001_initial") in applied
    assert ("example_shop", "0001_initial") in applied


def test_the_member_page_migration_depends_on_wagtailcore_only(loader):
    migration = loader.disk_migrations[("wagtail_members", "0001_initial")]

    assert {app for app, _ in migration.dependencies} == {"wagtailcore"}


def test_our_migrations_depend_on_oscar_only_through_its_first_migrations(loader):
    oscar_labels = oscar_app_labels()
    assert {"order", "basket", "offer", "customer"} <= oscar_labels

    too_late = {}
    for key, migration in our_migrations(loader).items():
        later = {
            (app, name)
            for app, name in migration.dependencies
            if app in oscar_labels and name not in {"0001_initial", "__first__"}
        }
        later -= JUSTIFIED_LATER_OSCAR_DEPENDENCIES.get(key, set())
        if later:
            too_late[key] = sorted(later)

    assert too_late == {}, (
        "depend on the earliest Oscar migration that has the model "
        "(see migrations/README.md), or justify the dependency above"
    )


def test_our_migrations_form_a_single_line_per_app(loader):
    for app in OUR_APPS:
        leaves = [name for label, name in loader.graph.leaf_nodes() if label == app]
        assert len(leaves) <= 1, f"{app} has several leaf migrations: {leaves}"
