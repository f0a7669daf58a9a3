"""``python -m bench NAME [--scale N]``, or ``python -m bench all``."""

import argparse
import sys

from bench import checkout, test_suite

BENCHMARKS = {
    "checkout": checkout.run,
    "test_suite": test_suite.run,
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run benchmarks; each figure is printed as a 'name: value' line.",
    )
    parser.add_argument("name", choices=[*BENCHMARKS, "all"], help="what to measure")
    parser.add_argument(
        "--scale",
        type=int,
        default=None,
        help="how much work: orders for checkout (default 30); unused by test_suite",
    )
    # Extra pytest arguments for test_suite, to check it on part of the suite.
    parser.add_argument("--pytest-args", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.scale is not None and args.scale < 1:
        parser.error("--scale must be at least 1")
    return args


def main(argv=None):
    args = parse_args(argv)
    names = list(BENCHMARKS) if args.name == "all" else [args.name]
    status = 0
    for name in names:
        status = max(status, BENCHMARKS[name](args) or 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
