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
