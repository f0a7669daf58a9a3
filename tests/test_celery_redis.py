"""Celery: real workers through Redis; without a broker tasks run eagerly.

The Redis tests start ``celery -A example_shop worker`` as a subprocess on a Redis
database of its own (``/15`` of ``CELERY_BROKER_URL``) and a queue named for the test,
so they can neither take nor leave work for any other worker on the same server. One
answers a ping; one expires a batch of lots end to end on the test's PostgreSQL
database (the beat task fans out, the worker runs every chunk); one kills the worker
with SIGKILL in the middle of a chunk, starts another, and checks that the batch
completes with every lot expired once and the ledger check clean.
"""

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

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


def start_worker(
    tmp_path, redis_url, queue, *, settings_module=None, env=None, pool="solo"
):
    """A worker of the example shop (one process with ``solo``; a master and one
    child with ``prefork``, the production default) consuming only ``queue``;
    its output goes to ``tmp_path/worker-<n>.log``."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": settings_module or "example_shop.settings.test",
        "CELERY_BROKER_URL": redis_url,
        "CELERY_RESULT_BACKEND": redis_url,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "EXAMPLE_SHOP_VAR_DIR": str(tmp_path / "var"),
        "DJANGO_MEDIA_ROOT": str(tmp_path / "media"),
        "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])
        ),
        **(env or {}),
    }
    log = tmp_path / f"worker-{len(list(tmp_path.glob('worker-*.log')))}.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "example_shop",
                "worker",
                f"--pool={pool}",
                "--concurrency=1",
                "--loglevel=WARNING",
                "--without-heartbeat",
                "--without-gossip",
                "--without-mingle",
                "--queues",
                queue,
                "--hostname",
                f"{queue}-{uuid.uuid4().hex[:6]}@%h",
            ],
            cwd=ROOT,
            env=env,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    return process, log


def stop(process):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@pytest.fixture
def queue(redis_url):
    """A queue of this test's own, removed from Redis afterwards."""
    name = f"loyalty-tests-{uuid.uuid4().hex[:12]}"
    try:
        yield name
    finally:
        forget_queue(redis_url, name)


@pytest.fixture
def worker(tmp_path, redis_url, queue):
    process, log = start_worker(tmp_path, redis_url, queue)
    try:
        yield queue, process, log
    finally:
        stop(process)


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


# An expiry batch through a real worker ----------------------------------------------

#: Lots past their date, in chunks of CHUNK lot ids: BATCH / CHUNK tasks.
BATCH = 12_000
CHUNK = 400


def worker_database_url():
    """The test database (the worker is another process: it sees committed rows)."""
    from django.db import connection

    db = connection.settings_dict
    user = quote(db["USER"] or "postgres")
    password = f":{quote(db['PASSWORD'])}" if db["PASSWORD"] else ""
    host = db["HOST"] or "127.0.0.1"
    return f"postgres://{user}{password}@{host}:{db['PORT'] or 5432}/{db['NAME']}"


@pytest.fixture
def due_batch(db):
    """BATCH lots of 500 members past their expiry date (and some still valid),
    written set-based like a migrated programme; the ledger is consistent."""
    from django.utils import timezone

    from bench.dataset import populate
    from oscar_loyalty.audit import find_drift

    now = timezone.now().replace(microsecond=0)
    populate(members=500, due_lots=BATCH, valid_lots=300, now=now)
    assert find_drift() == []
    return now


def expiry_worker(tmp_path, redis_url, queue, pool="solo"):
    return start_worker(
        tmp_path,
        redis_url,
        queue,
        pool=pool,
        settings_module="tests.worker_settings",
        env={
            "DATABASE_URL": worker_database_url(),
            "LOYALTY_TEST_QUEUE": queue,
            "LOYALTY_TEST_EXPIRY_CHUNK": str(CHUNK),
        },
    )


def expired_count():
    from oscar_loyalty.models import Lot

    return Lot.objects.filter(status=Lot.Status.EXPIRED).count()


def wait_until(condition, *, timeout, process, log, what):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        if process is not None and process.poll() is not None:
            pytest.fail(f"the worker stopped ({process.poll()}):\n{log.read_text()}")
        time.sleep(0.02)
    pytest.fail(f"{what} not within {timeout} s:\n{log.read_text()}")


def unacked(server, queue):
    """Messages of ``queue`` taken by a worker and not acknowledged (Kombu keeps
    them in one hash for the whole database, as [message, exchange, routing key])."""
    return sum(1 for value in server.hvals("unacked") if json.loads(value)[-1] == queue)


def send_expiry(client_app, queue, now):
    with client_app.connection_for_write() as connection:
        Queue(queue, Exchange(queue), routing_key=queue).bind(connection).declare()
    return client_app.send_task(
        "oscar_loyalty.expire_points", kwargs={"now": now.isoformat()}, queue=queue
    )


def assert_expired_once(now):
    """Every due lot expired by exactly one posting of its own key; the
    balances agree with the rows; nothing valid touched."""
    from oscar_loyalty.audit import find_drift
    from oscar_loyalty.models import Lot, Posting

    due = Lot.objects.filter(expires_at__lte=now)
    assert due.count() == BATCH
    assert not due.exclude(status=Lot.Status.EXPIRED).exists()
    assert not Lot.objects.filter(
        expires_at__gt=now, status=Lot.Status.EXPIRED
    ).exists()
    expiries = Posting.objects.filter(kind=Posting.Kind.EXPIRE)
    assert expiries.count() == BATCH
    assert expiries.values("key").distinct().count() == BATCH
    assert find_drift() == []


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_expires_a_batch_end_to_end(
    tmp_path, redis_url, queue, client_app, due_batch
):
    process, log = expiry_worker(tmp_path, redis_url, queue)
    try:
        chunks = send_expiry(client_app, queue, due_batch).get(timeout=60)
        assert chunks == BATCH // CHUNK

        wait_until(
            lambda: expired_count() == BATCH,
            timeout=120,
            process=process,
            log=log,
            what="the whole batch expired",
        )
    finally:
        stop(process)

    assert_expired_once(due_batch)


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_batch_leaves_nothing_undone_or_done_twice(
    tmp_path, redis_url, queue, client_app, due_batch
):
    server = redis.Redis.from_url(redis_url)
    process, log = expiry_worker(tmp_path, redis_url, queue)
    try:
        send_expiry(client_app, queue, due_batch)
        # Kill it while it runs a chunk: some lots expired, not all, and a message
        # taken but not acknowledged (acks_late).
        wait_until(
            lambda: (
                0 < expired_count() < BATCH - 2 * CHUNK and unacked(server, queue) > 0
            ),
            timeout=120,
            process=process,
            log=log,
            what="the worker half-way through the batch",
        )
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
        done_before = expired_count()
        assert 0 < done_before < BATCH
        assert unacked(server, queue) > 0  # the chunk it was running

        # A new worker: the lost chunk comes back after the visibility timeout.
        process, log = expiry_worker(tmp_path, redis_url, queue)
        wait_until(
            lambda: expired_count() == BATCH and unacked(server, queue) == 0,
            timeout=180,
            process=process,
            log=log,
            what="the batch finished after the restart",
        )
    finally:
        stop(process)
        server.close()

    assert_expired_once(due_batch)


def children(pid):
    """The process ids a process started (Linux)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(child) for child in path.read_text().split()] if path.exists() else []


@pytest.mark.redis
@pytest.mark.postgres
@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_prefork_child_killed_mid_chunk_has_its_chunk_run_again(
    tmp_path, redis_url, queue, client_app, due_batch
):
    """The production pool: the master sees its child die (WorkerLostError) and,
    the task being ``reject_on_worker_lost``, puts the message back at once; a
    new child runs the chunk again from the start, and nothing is done twice."""
    server = redis.Redis.from_url(redis_url)
    process, log = expiry_worker(tmp_path, redis_url, queue, pool="prefork")
    try:
        send_expiry(client_app, queue, due_batch)
        wait_until(
            lambda: (
                0 < expired_count() < BATCH - 2 * CHUNK
                and unacked(server, queue) > 0
                and children(process.pid)
            ),
            timeout=120,
            process=process,
            log=log,
            what="the child half-way through the batch",
        )
        (child,) = children(process.pid)
        os.kill(child, signal.SIGKILL)
        assert 0 < expired_count() < BATCH

        # The same worker, a new child: no restart, no visibility timeout.
        wait_until(
            lambda: expired_count() == BATCH and unacked(server, queue) == 0,
            timeout=180,
            process=process,
            log=log,
            what="the batch finished after the child was killed",
        )
        assert children(process.pid) != [child]
        assert "WorkerLostError" in log.read_text() or "signal 9" in log.read_text()
    finally:
        stop(process)
        server.close()

    assert_expired_once(due_batch)
