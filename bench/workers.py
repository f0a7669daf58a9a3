"""Running a benchmark's worker subprocess and passing its figures on."""

import os
import re
import subprocess
import sys

from bench import ROOT, emit, info

FIGURE = re.compile(r"^[a-z0-9_]+: ")


def run_worker(module, arguments, *, label, figures, env=None):
    """Run ``python -m module arguments`` and print its figures.

    Returns (0 when it worked else 1, {figure: value as printed}).

    Lines of the worker's stdout that look like figures are printed as they are;
    the others go to stderr as progress. Figures in ``figures`` the worker did not
    print are printed as ``failed (...)`` when it fails, so every expected figure
    always gets its line.
    """
    command = [sys.executable, "-m", module, *map(str, arguments)]
    result = subprocess.run(
        command,
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        stdout=subprocess.PIPE,
        text=True,
        check=False,
    )
    printed = {}
    for line in result.stdout.splitlines():
        if FIGURE.match(line):
            print(line, flush=True)
            name, value = line.split(":", 1)
            printed[name] = value.strip()
        elif line.strip():
            info(f"{label} worker: {line}")
    if result.returncode == 0:
        return 0, printed
    for figure in figures:
        if figure not in printed:
            emit(figure, f"failed (worker exited with status {result.returncode})")
    return 1, printed


def whole_scale(args, default, name, unit):
    """``--scale`` as a whole number of ``unit`` (1 or more), or ``default``."""
    if args.scale is None:
        return default
    if args.scale < 1 or args.scale != int(args.scale):
        raise SystemExit(f"{name}: --scale is a number of {unit} (1 or more)")
    return int(args.scale)


def sqlite_then_postgres(name, module, arguments, *, figures, headline):
    """Run the worker ``module`` on a fresh SQLite database, then on a fresh copy
    of the migrated PostgreSQL template (dropped afterwards).

    The worker gets ``--database-url URL --label sqlite|postgres`` after
    ``arguments`` and prints each of ``figures`` suffixed with the label; the
    ``headline`` figures (those with goals) are printed again without suffix, from
    PostgreSQL, or ``skipped (reason)`` without it. Returns the exit status.
    """
    import tempfile
    from pathlib import Path

    from bench import pg

    status = 0
    every = (*figures, *headline)
    with tempfile.TemporaryDirectory(prefix="loyalty-bench-") as tmp:

        def measure(label, url):
            return run_worker(
                module,
                [*arguments, "--database-url", url, "--label", label],
                label=label,
                figures=[f"{figure}_{label}" for figure in every],
                env={
                    "DJANGO_MEDIA_ROOT": str(Path(tmp) / f"media-{label}"),
                    "EXAMPLE_SHOP_VAR_DIR": tmp,
                },
            )

        sqlite_url = f"sqlite:///{Path(tmp) / f'{name}.sqlite3'}"
        status = max(status, measure("sqlite", sqlite_url)[0])
        try:
            url = pg.fresh_copy(name)
        except pg.Unavailable as exc:
            for figure in every:
                emit(f"{figure}_postgres", f"skipped ({exc})")
            for figure in headline:
                emit(figure, f"skipped ({exc}); see {figure}_sqlite")
            return status
        try:
            code, printed = measure("postgres", url)
        finally:
            pg.drop_database(url)
    status = max(status, code)
    for figure in headline:
        emit(figure, printed.get(f"{figure}_postgres", "failed (see above)"))
    return status
