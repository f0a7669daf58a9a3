"""``test_suite``: wall-clock seconds of the whole test suite, and how many passed.

Figures:

* ``test_suite_seconds``: wall seconds of ``python -m pytest -q -p no:cacheprovider
  -n auto --maxprocesses=4 --dist load`` (as ``make test``) in a subprocess, with
  the current environment (so ``DATABASE_URL``, ``CI`` and the rest apply as they
  would to ``make test``);
* ``test_suite_tests``: the number of passed tests in pytest's summary line.
"""

import re
import shlex
import subprocess
import sys
import time

from bench import ROOT, emit, info

#: As ``make test`` runs it: on every core (pytest-xdist), at most four processes.
COMMAND = (
    sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
    "-n", "auto", "--maxprocesses=4", "--dist", "load",
)  # fmt: skip
# "3 failed, 120 passed, 2 skipped, 1 warning in 61.20s (0:01:01)", with or without
# the "=" rulers, or "no tests ran in 0.01s".
SUMMARY = re.compile(r"^=*\s*(?P<counts>.*?)\s+in\s+[\d.]+s\b")
COUNT = re.compile(r"(\d+) (\w+)")


def parse_summary(output):
    """The counts of pytest's final summary line: ``{"passed": 120, ...}``.

    Plural outcomes are singular here (``errors`` → ``error``). ``None`` when the
    output has no summary line (pytest crashed, or was interrupted).
    """
    for line in reversed(output.splitlines()):
        match = SUMMARY.match(line.strip())
        if not match:
            continue
        counts = match.group("counts")
        if counts == "no tests ran":
            return {}
        found = COUNT.findall(counts)
        if found:
            return {word.removesuffix("s"): int(n) for n, word in found}
    return None


def run(args):
    command = [*COMMAND, *shlex.split(args.pytest_args)]
    info(f"running {shlex.join(command[1:])}")
    lines = []
    started = time.perf_counter()
    with subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as process:
        for line in process.stdout:
            sys.stderr.write(line)
            lines.append(line)
    seconds = time.perf_counter() - started

    counts = parse_summary("".join(lines))
    emit("test_suite_seconds", f"{seconds:.1f}")
    if counts is None:
        emit("test_suite_tests", "failed (no pytest summary line)")
        return 1
    emit("test_suite_tests", counts.get("passed", 0))
    if process.returncode != 0:
        info(f"pytest exited with status {process.returncode}: {counts}")
        return 1
    return 0
