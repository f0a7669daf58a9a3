"""``python -m bench NAME [--scale N]``, or ``python -m bench all``."""

import argparse
import sys

from bench import (
    basket,
    checkout,
    expiry,
    imports,
    ledger,
    scoring,
    test_suite,
    tier_review,
)

BENCHMARKS = {
    "basket": basket.run,
    "checkout": checkout.run,
    "ledger": ledger.run,
    "expiry": expiry.run,
    "tier_review": tier_review.run,
    "import": imports.run,
    "scoring": scoring.run,
    "test_suite": test_suite.run,
}
#: What ``all`` (``make bench``) runs: a few minutes. The suite's timing is as long
#: as ``make test``; run it by name.
STANDARD = (
    "basket",
    "checkout",
    "ledger",
    "expiry",
    "tier_review",
    "import",
    "scoring",
)
SCALES = (
    "how much work, per benchmark: basket, page renders measured (default 60); "
    "checkout, orders measured (default 30); "
    "ledger, redemptions as a multiple of 3,000 (default 1); expiry, due lots as a "
    "multiple of 2.5 million (default 0.1); tier_review, members as a multiple of "
    "1 million (default 0.1); import, rows as a multiple of 100,000 (default 1); "
    "scoring, members as a multiple of 1 million, five orders each (default 0.1); "
    "unused by test_suite. Not with 'all' (each benchmark runs at its default)"
)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Run benchmarks; each figure is printed as a 'name: value' line.",
    )
    parser.add_argument("name", choices=[*BENCHMARKS, "all"], help="what to measure")
    parser.add_argument("--scale", type=float, default=None, help=SCALES)
    # Extra pytest arguments for test_suite, to check it on part of the suite.
    parser.add_argument("--pytest-args", default="", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.scale is not None:
        if args.name == "all":
            parser.error(
                "--scale means something different to each benchmark; "
                "give it with a benchmark's name, e.g. 'expiry --scale 1'"
            )
        if not args.scale > 0:
            parser.error("--scale must be more than 0")
    return args


def main(argv=None):
    args = parse_args(argv)
    names = STANDARD if args.name == "all" else [args.name]
    status = 0
    for name in names:
        status = max(status, BENCHMARKS[name](args) or 0)
    return status


if __name__ == "__main__":
    sys.exit(main())
