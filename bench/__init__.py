"""Benchmarks for the example shop: ``python -m bench NAME [--scale N]``.

Every figure goes to stdout as one ``name: value`` line; progress and information go
to stderr, so ``python -m bench all > figures.txt`` keeps only the figures.
"""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def emit(name, value):
    """Print one figure, exactly ``name: value``."""
    print(f"{name}: {value}", flush=True)


def info(message):
    """Progress and diagnostics, on stderr."""
    print(f"[bench] {message}", file=sys.stderr, flush=True)
