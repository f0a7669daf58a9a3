"""Run one function in several OS processes at once, against the test database.

Threads share the GIL and, with Django, often a connection; real concurrency bugs
(lost updates, row locks, unique races) need separate processes with their own
connections, as a web server's workers have. :func:`run_in_processes` starts ``n``
processes, lets each set Django up and connect to the *test* database (pytest-django
renames it, so the parent passes the name on), holds them at a barrier so they start
the work together, and returns what each one returned or raised::

    @pytest.mark.django_db(transaction=True)
    def test_something(...):
        outcomes = run_in_processes(work, 2, args=(user.pk,))
        assert [outcome.value for outcome in outcomes] == [...]

Rules:

* The test must use ``@pytest.mark.django_db(transaction=True)``: the children have
  their own connections, so they only see rows the test has committed, and the
  test's own connection must not be inside a transaction (it is closed first).
* ``func`` must be importable by its module and name (a module-level function):
  children import it after ``django.setup()``, so modules that need the app registry
  at import time (``get_model`` at module level, factories) are fine.
* Arguments and return values cross process boundaries, so they must be picklable:
  pass primary keys, not model instances.
* An in-memory SQLite test database cannot be shared between processes; use
  PostgreSQL (``DATABASE_URL``) or a file (``EXAMPLE_SHOP_TEST_DB``).
"""

import importlib
import multiprocessing
import os
import queue as queue_module
import time
import traceback
from dataclasses import dataclass
from typing import Any

__all__ = ["Outcome", "run_in_processes"]


@dataclass(frozen=True)
class Outcome:
    """What one process did: its return value, or the text of its exception."""

    index: int
    value: Any = None
    error: str | None = None

    @property
    def ok(self):
        return self.error is None


def run_in_processes(
    func,
    n=2,
    *,
    args=(),
    kwargs=None,
    timeout=60.0,
    start_method=None,
):
    """Call ``func(*args, **kwargs)`` in ``n`` processes started together.

    Returns one :class:`Outcome` per process, in process order. A process that does
    not finish within ``timeout`` seconds is terminated and reported as an error.
    ``start_method`` is ``"fork"`` (the default where the platform has it: children
    start at once with the parent's imported modules and settings) or ``"spawn"``
    (fresh interpreters that import Django, Oscar and Wagtail again: about 5 s more).
    """
    from django.conf import settings
    from django.db import connections

    target = _importable_name(func)
    for connection in connections.all(initialized_only=True):
        if connection.in_atomic_block:
            raise RuntimeError(
                "run_in_processes() needs committed data and a connection outside a "
                "transaction: mark the test @pytest.mark.django_db(transaction=True)"
            )
    db_names = {}
    for alias in connections:
        name = connections[alias].settings_dict["NAME"]
        if connections[alias].vendor == "sqlite" and _is_in_memory(name):
            raise RuntimeError(
                f"database {alias!r} is an in-memory SQLite database, which other "
                "processes cannot open: use PostgreSQL or EXAMPLE_SHOP_TEST_DB=<file>"
            )
        db_names[alias] = name
    # Children must not share the parent's sockets (fork), and the parent's
    # connection must not hold locks the children wait for.
    connections.close_all()

    if start_method is None:
        forkable = "fork" in multiprocessing.get_all_start_methods()
        start_method = "fork" if forkable else "spawn"
    context = multiprocessing.get_context(start_method)
    barrier = context.Barrier(n)
    results = context.Queue()
    setup = {
        "settings_module": os.environ.get("DJANGO_SETTINGS_MODULE", ""),
        "media_root": str(getattr(settings, "MEDIA_ROOT", "") or ""),
        "db_names": db_names,
        "timeout": timeout,
    }
    processes = [
        context.Process(
            target=_child,
            args=(index, target, tuple(args), dict(kwargs or {}), setup, barrier),
            kwargs={"results": results},
            name=f"run_in_processes-{index}",
            daemon=True,
        )
        for index in range(n)
    ]
    for process in processes:
        process.start()

    outcomes = {}
    deadline = time.monotonic() + timeout
    while len(outcomes) < n and time.monotonic() < deadline:
        try:
            index, value, error = results.get(timeout=0.2)
        except queue_module.Empty:
            if not any(process.is_alive() for process in processes):
                # Give a last result in the pipe the chance to arrive.
                try:
                    index, value, error = results.get(timeout=1)
                except queue_module.Empty:
                    break
            else:
                continue
        outcomes[index] = Outcome(index, value, error)

    for index, process in enumerate(processes):
        process.join(timeout=max(0.0, deadline - time.monotonic()) + 5)
        if process.is_alive():
            process.terminate()
            process.join(5)
        if index not in outcomes:
            reason = (
                f"timed out after {timeout} s"
                if process.exitcode in (None, -15)
                else f"exited with code {process.exitcode} without a result"
            )
            outcomes[index] = Outcome(index, error=f"process {index} {reason}")
    results.close()
    return [outcomes[index] for index in range(n)]


def _importable_name(func):
    if isinstance(func, str):
        if ":" not in func:
            raise ValueError(f"expected 'module:function', got {func!r}")
        return func
    qualname = getattr(func, "__qualname__", "")
    if "<locals>" in qualname or "<lambda>" in qualname or not qualname:
        raise ValueError(
            f"{func!r} must be a module-level function, importable by name in a "
            "child process"
        )
    return f"{func.__module__}:{qualname}"


def _is_in_memory(name):
    name = str(name)
    return name == ":memory:" or "mode=memory" in name or name.startswith("file::")


def _resolve(target):
    module_name, _, qualname = target.partition(":")
    obj = importlib.import_module(module_name)
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def _child(index, target, args, kwargs, setup, barrier, *, results):
    """Body of each process: set Django up on the test database, wait, work."""
    connections = None
    started = False
    try:
        if setup["settings_module"]:
            os.environ.setdefault("DJANGO_SETTINGS_MODULE", setup["settings_module"])
        if setup["media_root"]:
            os.environ.setdefault("DJANGO_MEDIA_ROOT", setup["media_root"])
        import django

        django.setup()
        from django.conf import settings
        from django.db import connections

        connections.close_all()  # anything inherited through fork
        for alias, name in setup["db_names"].items():
            settings.DATABASES[alias]["NAME"] = name
            connections[alias].settings_dict["NAME"] = name
        connections["default"].ensure_connection()
        func = _resolve(target)
        started = True
        barrier.wait(timeout=setup["timeout"])
        value = func(*args, **kwargs)
    except BaseException:  # noqa: BLE001 - reported to the parent as text
        if not started:
            barrier.abort()  # the others would wait for this one until the timeout
        results.put((index, None, traceback.format_exc()))
    else:
        results.put((index, value, None))
    finally:
        if connections is not None:
            connections.close_all()
