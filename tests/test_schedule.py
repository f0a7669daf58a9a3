"""The programme's default beat schedule, and how its tasks are acknowledged."""

import pytest
from celery.schedules import crontab, schedule
from django.conf import settings

from example_shop.celery import app
from oscar_loyalty.schedule import JOBS, loyalty_beat_schedule


@pytest.fixture(scope="module")
def tasks():
    app.loader.import_default_modules()
    return app.tasks


def test_every_entry_names_a_task_of_the_plugin(tasks):
    for name, (task, when, what) in JOBS.items():
        assert task in tasks, name
        assert isinstance(when, crontab) and what


def test_the_example_shop_runs_the_default_schedule_and_the_media_check(tasks):
    schedule = dict(settings.CELERY_BEAT_SCHEDULE)
    media = schedule.pop("members-place-gated-media")

    assert schedule == loyalty_beat_schedule()
    assert media["task"] in tasks


def test_a_shop_changes_an_entrys_time_or_leaves_one_out():
    nightly = crontab(hour=2, minute=0)

    entries = loyalty_beat_schedule(
        overrides={"loyalty-review-tiers": nightly, "loyalty-release-stale-holds": 120},
        exclude=["loyalty-purge-voucher-attempts"],
    )

    assert entries["loyalty-review-tiers"] == {
        "task": "oscar_loyalty.review_tiers",
        "schedule": nightly,
    }
    assert entries["loyalty-release-stale-holds"]["schedule"] == schedule(120)
    assert "loyalty-purge-voucher-attempts" not in entries
    assert len(entries) == len(JOBS) - 1


def test_a_name_that_is_no_entry_is_an_error_not_a_silent_no_op():
    with pytest.raises(ValueError, match="loyalty-expire-point"):
        loyalty_beat_schedule(overrides={"loyalty-expire-point": 60})
    with pytest.raises(ValueError, match="loyalty-nothing"):
        loyalty_beat_schedule(exclude=["loyalty-nothing"])


#: Tasks a dead worker's message must not run again: a message to a member sent
#: twice is worse than one missed.
AT_MOST_ONCE = {"oscar_loyalty.send_notifications"}


def test_every_task_of_both_apps_goes_back_to_the_queue_if_its_worker_dies(tasks):
    ours = {
        name: task
        for name, task in tasks.items()
        if name.startswith(("oscar_loyalty.", "wagtail_members."))
        and name not in AT_MOST_ONCE
    }

    assert len(ours) >= len(JOBS)
    for name, task in ours.items():
        assert task.acks_late is True, name
        assert task.reject_on_worker_lost is True, name


def test_messages_to_members_are_not_sent_again_after_a_worker_dies(tasks):
    for name in AT_MOST_ONCE:
        assert tasks[name].acks_late is False, name
