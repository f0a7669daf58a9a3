"""The ledger figures; run by :mod:`bench.ledger` in a subprocess.

``python -m bench._ledger_worker --database-url URL --scale S`` writes a programme
of 20,000 members with five valid lots each (:mod:`bench.dataset`), then times
``oscar_loyalty.services.ledger.redeem`` of 150 points (which locks the member,
checks the balance and consumes lots oldest expiry first):

* by one process, ``S`` × 3,000 redemptions;
* by two processes at once (forked, started together), as many each, on two
  disjoint halves of the members, so they never wait for each other's row locks.

Each redemption is for a different member (shuffled), so no row is hot; at the
end every redemption must be written exactly once and no touched member may drift.
"""

import argparse
import multiprocessing
import random
import sys
import time

from bench import _django, emit, info

MEMBERS = 20_000
LOTS_PER_MEMBER = 5
PER_PROCESS = 3_000
POINTS = 150


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench._ledger_worker")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--scale", type=float, default=1)
    return parser.parse_args(argv)


def redeem_all(members, run, barrier=None):
    """Redeem once per member; (redemptions, started, finished) in monotonic time."""
    from oscar_loyalty.services import ledger

    if barrier is not None:
        barrier.wait()
    started = time.monotonic()
    for index, member in enumerate(members):
        ledger.redeem(
            member=member, points=POINTS, key=f"redeem:bench:{run}:{index}:{member.pk}"
        )
    return len(members), started, time.monotonic()


def _child(members, run, barrier, results):
    from django.db import connections

    try:
        results.put(redeem_all(members, run, barrier))
    finally:
        connections.close_all()


def redeem_in_processes(groups, run):
    """Redeem each group in a forked process of its own, all started together."""
    from django.db import connections

    connections.close_all()  # each child opens its own connection
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(len(groups))
    results = context.Queue()
    processes = [
        context.Process(target=_child, args=(group, run, barrier, results))
        for group in groups
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=3600) for _ in processes]
    for process in processes:
        process.join()
        if process.exitcode != 0:
            raise RuntimeError(f"a redeeming process exited with {process.exitcode}")
    count = sum(done for done, _, _ in outcomes)
    seconds = max(end for _, _, end in outcomes) - min(s for _, s, _ in outcomes)
    return count, seconds


def main(argv=None):
    args = parse_args(argv)
    per_process = max(round(PER_PROCESS * args.scale), 10)
    if 2 * per_process > MEMBERS:
        raise SystemExit(f"ledger: at most {MEMBERS // 2} redemptions per process")
    _django.setup(args.database_url)
    _django.migrate("ledger")

    from django.utils import timezone

    from bench import dataset
    from oscar_loyalty.audit import find_drift
    from oscar_loyalty.models import Member, Posting

    first, last = dataset.populate(
        members=MEMBERS,
        due_lots=0,
        valid_lots=MEMBERS * LOTS_PER_MEMBER,
        now=timezone.now(),
    )
    members = list(Member.objects.filter(pk__range=(first, last)).only("pk"))
    random.Random(5).shuffle(members)

    # A few redemptions first (connections, caches), on members not measured.
    redeem_all(members[-20:], "warmup")
    count, started, finished = redeem_all(members[:per_process], "one")
    one = count / (finished - started)
    info(f"ledger: {count} redemptions by one process in {finished - started:.1f} s")

    pool = members[per_process : 3 * per_process]
    count, seconds = redeem_in_processes([pool[0::2], pool[1::2]], "two")
    two = count / seconds
    info(f"ledger: {count} redemptions by two processes in {seconds:.1f} s")

    touched = [member.pk for member in members[: 3 * per_process]]
    written = Posting.objects.filter(key__startswith="redeem:bench:").count()
    problems = find_drift(member_ids=touched)
    if written != 3 * per_process + 20 or problems:
        info(f"ledger: WRONG: {written} redemptions written; drift {problems[:5]}")
        emit("ledger_posts_per_second", "failed (wrong result, see stderr)")
        emit("ledger_posts_per_second_2_processes", "failed (wrong result)")
        return 1
    emit("ledger_posts_per_second", f"{one:.0f}")
    emit("ledger_posts_per_second_2_processes", f"{two:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
