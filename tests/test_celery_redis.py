"""Celery: a real worker answers through Redis; without a broker tasks run eagerly.

The Redis test starts ``celery -A example_shop worker`` as a subprocess on a Redis
database of its own (``/15`` of ``CELERY_BROKER_URL``) and a queue named for this run,
so it can neither take nor leave work for any other worker on the same server.
"""

import os
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import redis
from celery import Celery
from celery.exceptions import TimeoutError as CeleryTimeoutError
from celery.result import EagerResult
from kombu import Exchange, Queue

from example_shop.celery import app as shop_app
from example_shop.celery import ping

ROOT = Path(__file__).resolve().parent.parent
TEST_REDIS_DB = 15


def redis_url_for_tests(url):
    """``url`` pointing at the Redis database kept for the tests."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{TEST_REDIS_DB}", query=""))


@pytest.fixture
def redis_url():
    return redis_url_for_tests(os.environ["CELERY_BROKER_URL"])


@pytest.fixture
def worker(tmp_path, redis_url):
    """A solo-pool worker of the example shop, consuming one private queue."""
    queue = f"loyalty-tests-{uuid.uuid4().hex[:12]}"
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "example_shop.settings.test",
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "EXAMPLE_SHOP_VAR_DIR": str(tmp_path / "var"),
        "DJANGO_MEDIA_ROOT": str(tmp_path / "media"),
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
        ),
    }
    log = tmp_path / "worker.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "example_shop",
                "worker",
                "--pool=solo",
                "--concurrency=1",
                "--loglevel=WARNING",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                "--queues",
                queue,
                "--hostname",
                f"{queue}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        yield queue, process, log
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)
        forget_queue(redis_url, queue)


def forget_queue(redis_url, queue):
    """Remove the queue's list and Kombu's bindings for it from Redis."""
    server = redis.Redis.from_url(redis_url)
    try:
        keys = list(server.scan_iter(match=f"*{queue}*"))
        if keys:
            server.delete(*keys)
    finally:
        server.close()


@pytest.fixture
def client_app(redis_url, monkeypatch):
    """A bare Celery client: it knows the broker and backend, not the tasks."""
    # Celery reads these variables in preference to the app's own configuration.
    monkeypatch.setenv("CELERY_BROKER_URL", redis_url)
    monkeypatch.setenv("CELERY_RESULT_BACKEND", redis_url)
    app = Celery(
        "loyalty-tests-client",
        broker=redis_url,
        backend=redis_url,
        set_as_current=False,
    )
    app.conf.task_always_eager = False
    app.conf.broker_connection_retry_on_startup = False
    try:
        yield app
    finally:
        app.close()


@pytest.mark.redis
@pytest.mark.slow
def test_a_worker_answers_ping_through_redis(worker, client_app):
    queue, process, log = worker

    # Declare the queue first: Redis drops a message sent to an exchange that has no
    # binding yet, and the worker binds its queue only once Django is set up.
    with client_app.connection_for_write() as connection:
        Queue(queue, Exchange(queue), routing_key=queue).bind(connection).declare()
    result = client_app.send_task("example_shop.ping", queue=queue)
    try:
        answer = result.get(timeout=30)
    except CeleryTimeoutError:
        pytest.fail(
            f"no answer in 30 s (worker exit code {process.poll()}):\n"
            + log.read_text()
        )

    assert answer == "pong"
    assert result.status == "SUCCESS"
    assert process.poll() is None, "the worker stopped after one task"
    result.forget()


def test_redis_url_for_tests_keeps_the_server_and_swaps_the_database():
    assert (
        redis_url_for_tests("redis://:secret@cache.internal:6380/0")
        == "redis://:secret@cache.internal:6380/15"
    )
    assert redis_url_for_tests("redis://127.0.0.1:6379") == "redis://127.0.0.1:6379/15"


def test_the_embedded_default_is_an_eager_in_memory_broker():
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith("CELERY_")
    }
    code = (
        "from example_shop.settings import base; "
        "print(base.CELERY_BROKER_URL, base.CELERY_TASK_ALWAYS_EAGER, "
        "base.CELERY_RESULT_BACKEND)"
    )

    output = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout

    assert output.split() == ["memory://", "True", "None"]


def test_without_a_worker_ping_runs_eagerly_in_the_web_process():
    assert shop_app.conf.task_always_eager is True
    assert shop_app.conf.task_eager_propagates is True

    result = ping.delay()

    assert isinstance(result, EagerResult)
    assert result.get() == "pong"
