"""The ledger under real concurrency: several OS processes posting at once.

Each test commits its fixtures (users, members, lots and holds, all through the
services) in the test process, starts its processes together with
:func:`tests.concurrency.run_in_processes`, and then checks the ledger the way
``check_loyalty_ledger`` does (``find_drift() == []``) and that nothing is negative.

Every process runs :func:`perform` on the same *plan*, a list with one list of
operations per process; a process finds its own by its index. Random amounts come
from seeded generators, so a plan is the same on every run (the interleaving is not:
the assertions hold for every order the database may choose).

PostgreSQL only: SQLite's row locks are a no-op, so a race there proves nothing.
Run with ``DATABASE_URL=postgres://postgres@127.0.0.1:5432/<name>``.
"""

import multiprocessing
import random
import threading
import time
from collections import Counter, defaultdict
from datetime import timedelta

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection
from django.db.models import F, Q, Sum
from django.utils import timezone

from oscar_loyalty.audit import find_drift
from oscar_loyalty.exceptions import HoldNotActive, InsufficientPoints
from oscar_loyalty.jobs import expire_lots
from oscar_loyalty.models import Entry, Hold, Lot, Member, Posting
from oscar_loyalty.services import holds, ledger
from oscar_loyalty.services.members import get_or_create_member
from tests.concurrency import run_in_processes
from tests.factories import UserFactory

pytestmark = [pytest.mark.postgres, pytest.mark.django_db(transaction=True)]

SEED = 20250611
#: "Now" for fixtures and the expiry job (lots are dated relative to it).
T0 = timezone.now().replace(microsecond=0)


# What the child processes run (module level, so they can import it by name) ---------


def process_index():
    """This process's index in :func:`run_in_processes` (``run_in_processes-<i>``)."""
    return int(multiprocessing.current_process().name.rpartition("-")[2])


def perform(plan):
    """Run this process's operations from ``plan``, one outcome each.

    An outcome is ``("ok", value)``, ``("refused", error class name, detail)`` for
    a refusal the ledger promises (nothing written), or ``("database-error", error
    class name, first line)`` when a hold fails in the database (its transaction is
    rolled back). Anything else is raised, and :func:`run_in_processes` reports it
    as the process's error.
    """
    return [_do(*operation) for operation in plan[process_index()]]


def _do(name, *args):
    try:
        return ("ok", OPERATIONS[name](*args))
    except InsufficientPoints as refusal:
        return ("refused", "InsufficientPoints", refusal.params["spendable"])
    except HoldNotActive:
        return ("refused", "HoldNotActive", None)
    except DatabaseError as error:
        if name != "hold":
            raise
        return ("database-error", type(error).__name__, str(error).splitlines()[0])


def _redeem(member_pk, points, key):
    member = Member.objects.get(pk=member_pk)
    return ledger.redeem(member=member, points=points, key=key).pk


def _earn(member_pk, points, key):
    member = Member.objects.get(pk=member_pk)
    return ledger.earn(member=member, points=points, key=key, order_number=key).pk


def _reverse(lot_pk, points, key):
    lot = Lot.objects.get(pk=lot_pk)
    return ledger.reverse_lot(lot=lot, points=points, key=key).pk


def _hold(member_pk, basket_id, points):
    member = Member.objects.get(pk=member_pk)
    return holds.hold_points(member=member, basket_id=basket_id, points=points).pk


def _capture(hold_pk, order_number):
    hold = Hold.objects.get(pk=hold_pk)
    return holds.capture_hold(hold=hold, order_number=order_number).pk


def _capture_basket(user_pk, basket_id, points, order_number):
    return holds.capture_basket(
        user_id=user_pk, basket_id=basket_id, points=points, order_number=order_number
    ).pk


def _release(hold_pk):
    return holds.release_hold(hold=Hold.objects.get(pk=hold_pk))


def _expire(now, start_id=None, end_id=None):
    return expire_lots(now=now, start_id=start_id, end_id=end_id)


def _join(user_pk):
    return get_or_create_member(get_user_model().objects.get(pk=user_pk)).pk


OPERATIONS = {
    "redeem": _redeem,
    "earn": _earn,
    "reverse": _reverse,
    "hold": _hold,
    "capture": _capture,
    "capture_basket": _capture_basket,
    "release": _release,
    "expire": _expire,
    "join": _join,
}


# Fixtures and checks (the test process) ---------------------------------------------


def new_member():
    return get_or_create_member(UserFactory())


def give_lots(member, sizes, *, first_confirmed, tag="L"):
    """Earn and confirm one lot per size, each confirmed (so expiring) a day later."""
    lots = []
    for line, points in enumerate(sizes, start=1):
        order_number = f"{member.number}-{tag}{line}"
        posting = ledger.earn(
            member=member,
            key=f"earn:{order_number}:{line}",
            points=points,
            order_number=order_number,
            order_line_id=line,
            now=first_confirmed - timedelta(hours=1),
        )
        lot = posting.entries.get().lot
        ledger.confirm_lot(lot=lot, now=first_confirmed + timedelta(days=line - 1))
        lot.refresh_from_db()
        lots.append(lot)
    return lots


def member_with(sizes, *, first_confirmed=None):
    member = new_member()
    lots = give_lots(
        member, sizes, first_confirmed=first_confirmed or T0 - timedelta(days=30)
    )
    member.refresh_from_db()
    assert member.available == sum(sizes)
    return member, lots


def split(total, parts, rng):
    """``total`` as ``parts`` positive integers, at random."""
    cuts = sorted(rng.sample(range(1, total), parts - 1))
    return [b - a for a, b in zip([0, *cuts], [*cuts, total], strict=True)]


def run(plan, **kwargs):
    """Start one process per entry of ``plan``; their outcomes, or fail on errors."""
    outcomes = run_in_processes(perform, len(plan), args=(plan,), **kwargs)
    assert [outcome.error for outcome in outcomes if not outcome.ok] == []
    return [outcome.value for outcome in outcomes]


def assert_ledger_healthy():
    assert find_drift() == []
    assert not Member.objects.filter(
        Q(available__lt=0)
        | Q(held__lt=0)
        | Q(held__gt=F("available"))
        | Q(pending__lt=0)
        | Q(lifetime_earned__lt=0)
    ).exists()
    assert not Lot.objects.filter(
        Q(remaining__lt=0) | Q(reversed__lt=0) | Q(remaining__gt=F("points"))
    ).exists()
    assert not Posting.objects.filter(shortfall__lt=0).exists()


def changes_of(posting_pk):
    """A posting's entries as {lot pk: change to available}."""
    return dict(
        Entry.objects.filter(posting_id=posting_pk).values_list(
            "lot_id", "available_change"
        )
    )


def spent_by(posting_pk):
    return -sum(changes_of(posting_pk).values())


def taken_by(member, kind):
    """Points the member's postings of ``kind`` took from available."""
    total = Entry.objects.filter(member=member, posting__kind=kind).aggregate(
        total=Sum("available_change")
    )["total"]
    return -(total or 0)


def fifo_order(lots):
    return sorted(lots, key=lambda lot: (lot.expires_at, lot.pk))


def assert_spent_oldest_first(lots, spent):
    """Lots spent in (expires_at, id) order: whole ones first, at most one in part."""
    left = spent
    for lot in fifo_order(lots):
        lot.refresh_from_db()
        take = min(lot.points, left)
        left -= take
        assert lot.remaining == lot.points - take, (lot.pk, lot.remaining, take)
    assert left == 0


class Accountant:
    """A careful accountant's books for one member: lots, redemptions, refunds.

    Redemptions take from the lots oldest expiry first, and only what is available.
    A refund takes back what the refunded lot earned: from that lot first, then from
    the other lots oldest expiry first, never more than is available; what cannot be
    taken is the shortfall.
    """

    def __init__(self, lots):
        self.lots = {
            lot.pk: {
                "order": (lot.expires_at, lot.pk),
                "points": lot.points,
                "remaining": lot.points,
                "reversed": 0,
            }
            for lot in lots
        }

    @property
    def available(self):
        return sum(lot["remaining"] for lot in self.lots.values())

    def _take_oldest_first(self, points, changes):
        for pk in sorted(self.lots, key=lambda pk: self.lots[pk]["order"]):
            take = min(self.lots[pk]["remaining"], points)
            if take:
                self.lots[pk]["remaining"] -= take
                changes[pk] = changes.get(pk, 0) - take
                points -= take
        assert points == 0

    def redeem(self, points):
        assert points <= self.available, "a redemption spent more than was available"
        changes = {}
        self._take_oldest_first(points, changes)
        return changes, 0

    def refund(self, lot_pk, points):
        lot = self.lots[lot_pk]
        owed = min(points, lot["points"] - lot["reversed"])
        available = self.available
        from_lot = min(owed, lot["remaining"], available)
        changes = {}
        if from_lot:
            lot["remaining"] -= from_lot
            changes[lot_pk] = -from_lot
        from_others = max(0, min(owed - from_lot, available - from_lot))
        self._take_oldest_first(from_others, changes)
        lot["reversed"] += owed
        return changes, owed - from_lot - from_others


# Redemptions racing each other -----------------------------------------------------


@pytest.mark.parametrize(
    ("processes", "balance", "points"),
    [(8, 500, 100), (32, 740, 100)],
    ids=["8-processes-k5", "32-processes-k7"],
)
def test_concurrent_redemptions_spend_exactly_what_the_balance_allows(
    processes, balance, points
):
    """Given a balance that covers exactly k redemptions, when n > k processes redeem
    at once with distinct keys, then k succeed, the others are refused, and the
    points come from the lots oldest expiry first."""
    rng = random.Random(SEED + processes)
    member, lots = member_with(split(balance, 5, rng))
    k = balance // points
    plan = [
        [("redeem", member.pk, points, f"redeem:race-{i}")] for i in range(processes)
    ]

    (outcomes,) = zip(*run(plan), strict=True)

    succeeded = [value for status, value, *_ in outcomes if status == "ok"]
    refused = [outcome for outcome in outcomes if outcome[0] == "refused"]
    assert len(succeeded) == k
    assert len(refused) == processes - k
    assert {name for _, name, _ in refused} == {"InsufficientPoints"}
    assert all(spendable < points for _, _, spendable in refused)
    member.refresh_from_db()
    assert member.available == balance - k * points
    assert Posting.objects.filter(member=member, kind=Posting.Kind.REDEEM).count() == k
    assert [spent_by(pk) for pk in succeeded] == [points] * k
    assert_spent_oldest_first(lots, k * points)
    assert_ledger_healthy()


# Holds and captures ------------------------------------------------------------------


def test_orders_capturing_at_once_never_spend_the_same_points():
    """Given 1500 points of which a basket holds 600, when 8 orders capture 600 each
    at once (4 from that basket, as a double submit would; 4 from a basket without a
    hold), then the hold is captured once, one more order is paid from the 900 still
    spendable, and the other 6 are refused: 300 points are left and no drift."""
    member, _lots = member_with([500, 500, 500])
    held = holds.hold_points(member=member, basket_id=91, points=600)
    plan = [
        [("capture_basket", member.user_id, 91 if i < 4 else 92, 600, f"R{i}")]
        for i in range(8)
    ]

    (outcomes,) = zip(*run(plan), strict=True)

    assert [o[0] for o in outcomes].count("ok") == 2
    assert {o[1] for o in outcomes if o[0] == "refused"} == {"HoldNotActive"}
    held.refresh_from_db()
    assert held.status == Hold.Status.CAPTURED
    member.refresh_from_db()
    assert (member.available, member.held) == (300, 0)
    assert Posting.objects.filter(member=member, kind=Posting.Kind.REDEEM).count() == 2
    assert_ledger_healthy()


def test_concurrent_holds_never_hold_more_than_available_and_captures_spend_them():
    """Given 500 points, when 8 baskets hold random amounts at once, then the holds
    that succeed fit in the balance and every refused one did not fit; when the
    holds are then captured at once (some twice, one released meanwhile), each hold
    is captured or released exactly once and the captures spend exactly its points."""
    rng = random.Random(SEED)
    balance = 500
    member, _ = member_with(split(balance, 4, rng))
    amounts = [rng.randint(40, 160) for _ in range(8)]
    baskets = [9100 + i for i in range(8)]
    plan = [
        [("hold", member.pk, basket, points)]
        for basket, points in zip(baskets, amounts, strict=True)
    ]

    (outcomes,) = zip(*run(plan), strict=True)

    held = {
        basket: (points, outcome[1])
        for basket, points, outcome in zip(baskets, amounts, outcomes, strict=True)
        if outcome[0] == "ok"
    }
    refused = [
        points
        for points, outcome in zip(amounts, outcomes, strict=True)
        if outcome[0] != "ok"
    ]
    assert {outcome[:2] for outcome in outcomes if outcome[0] != "ok"} <= {
        ("refused", "InsufficientPoints")
    }
    total_held = sum(points for points, _ in held.values())
    assert 0 < total_held <= balance
    assert all(points > balance - total_held for points in refused)
    member.refresh_from_db()
    assert (member.available, member.held) == (balance, total_held)
    active = Hold.objects.filter(member=member, status=Hold.Status.ACTIVE)
    assert sorted(active.values_list("basket_id", flat=True)) == sorted(held)
    assert_ledger_healthy()

    # Then: capture every hold at once; the first holds twice, the last is released.
    hold_pks = [hold_pk for _, hold_pk in held.values()]
    capture_plan = [
        [("capture", hold_pks[i % len(hold_pks)], f"ORDER-{i}")] for i in range(7)
    ]
    capture_plan.append([("release", hold_pks[-1])])

    (captures,) = zip(*run(capture_plan), strict=True)

    captured_by = defaultdict(list)
    for operation, outcome in zip(capture_plan, captures, strict=True):
        name, hold_pk, *order = operation[0]
        if name == "capture" and outcome[0] == "ok":
            captured_by[hold_pk].append((order[0], outcome[1]))
        elif name == "capture":
            assert outcome[:2] == ("refused", "HoldNotActive")
            assert not Posting.objects.filter(key=f"redeem:{order[0]}").exists()
    spent = 0
    for hold in Hold.objects.filter(pk__in=hold_pks):
        if hold.status == Hold.Status.CAPTURED:
            ((order_number, posting_pk),) = captured_by[hold.pk]
            assert hold.order_number == order_number
            assert Posting.objects.get(pk=posting_pk).key == f"redeem:{order_number}"
            assert spent_by(posting_pk) == hold.points
            spent += hold.points
        else:
            assert hold.status == Hold.Status.RELEASED
            assert hold.pk == hold_pks[-1] and hold.pk not in captured_by
            assert captures[-1] == ("ok", True)
    member.refresh_from_db()
    assert (member.available, member.held) == (balance - spent, 0)
    assert Posting.objects.filter(member=member, kind=Posting.Kind.REDEEM).count() == (
        len(captured_by)
    )
    assert_ledger_healthy()


# Idempotency keys --------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["earn", "redeem", "capture"])
def test_one_idempotency_key_from_8_processes_posts_once(kind):
    """Given one event, when 8 processes post it at once with the same key, then all
    get the same posting and the balance changes once."""
    member, _ = member_with([600, 400])
    if kind == "earn":
        key, operation = "earn:IDEM-1:1", ("earn", member.pk, 70, "earn:IDEM-1:1")
    elif kind == "redeem":
        key, operation = "redeem:IDEM-2", ("redeem", member.pk, 120, "redeem:IDEM-2")
    else:
        hold = holds.hold_points(member=member, basket_id=9200, points=300)
        key, operation = "redeem:IDEM-3", ("capture", hold.pk, "IDEM-3")

    (outcomes,) = zip(*run([[operation]] * 8), strict=True)

    posting = Posting.objects.get(key=key)
    assert set(outcomes) == {("ok", posting.pk)}
    assert Posting.objects.filter(member=member).count() == 4 + 1  # 2 earns, 2 confirms
    member.refresh_from_db()
    if kind == "earn":
        assert (member.available, member.pending) == (1000, 70)
        assert member.lifetime_earned == 1070
        assert Lot.objects.filter(member=member).count() == 3
    else:
        spent = 120 if kind == "redeem" else 300
        assert (member.available, member.held, member.pending) == (1000 - spent, 0, 0)
        assert spent_by(posting.pk) == spent
    assert_ledger_healthy()


# Redemption racing the expiry job ----------------------------------------------------


def test_redemptions_racing_the_expiry_job_lose_and_double_count_nothing():
    """Given three members whose lots are partly past their expiry date, when five
    processes redeem while three run the expiry job (two over all lots, a double
    beat, one in two lot-id ranges), then every point is redeemed, expired or still
    there, exactly once, and every lot past its date is expired or spent."""
    rng = random.Random(SEED + 1)
    members, due_lots, fresh_lots = [], [], []
    for _ in range(3):
        member = new_member()
        due_lots += give_lots(
            member,
            split(300, 3, rng),
            first_confirmed=T0 - timedelta(days=400),  # expire about T0 - 35 days
            tag="D",
        )
        fresh_lots += give_lots(
            member, split(300, 3, rng), first_confirmed=T0 - timedelta(days=10)
        )
        members.append(member)
    assert all(lot.expires_at <= T0 for lot in due_lots)
    assert all(lot.expires_at > T0 for lot in fresh_lots)
    member_pks = [member.pk for member in members]
    lot_ids = sorted(lot.pk for lot in due_lots + fresh_lots)
    middle = lot_ids[len(lot_ids) // 2]
    plan = [
        [("expire", T0)],
        [("expire", T0)],
        [("expire", T0, None, middle), ("expire", T0, middle, None)],
    ]
    for process in range(5):
        plan.append(
            [
                ("redeem", rng.choice(member_pks), rng.randint(30, 150), key)
                for key in (f"redeem:exp-{process}-{n}" for n in range(6))
            ]
        )

    results = run(plan)

    expiries, redemptions = results[:3], results[3:]
    expired_postings = Posting.objects.filter(kind=Posting.Kind.EXPIRE)
    expired_lots = Lot.objects.filter(status=Lot.Status.EXPIRED)
    assert sum(count for outcomes in expiries for _, count in outcomes) == (
        expired_postings.count()
    )
    assert expired_postings.count() == expired_lots.count()
    assert set(expired_lots.values_list("pk", flat=True)) <= {
        lot.pk for lot in due_lots
    }
    assert not Lot.objects.filter(
        status=Lot.Status.ACTIVE, remaining__gt=0, expires_at__lte=T0
    ).exists()
    assert set(
        Lot.objects.filter(pk__in=[lot.pk for lot in fresh_lots]).values_list(
            "status", flat=True
        )
    ) == {Lot.Status.ACTIVE}
    redeemed = Counter()
    for operations, outcomes in zip(plan[3:], redemptions, strict=True):
        for (_, member_pk, points, key), outcome in zip(
            operations, outcomes, strict=True
        ):
            if outcome[0] == "ok":
                assert spent_by(outcome[1]) == points
                redeemed[member_pk] += points
            else:
                assert outcome[:2] == ("refused", "InsufficientPoints")
                assert not Posting.objects.filter(key=key).exists()
                assert points > Member.objects.get(pk=member_pk).available
    for member in members:
        member.refresh_from_db()
        original = Lot.objects.filter(member=member).aggregate(t=Sum("points"))["t"]
        redeemed_here = taken_by(member, Posting.Kind.REDEEM)
        expired_here = taken_by(member, Posting.Kind.EXPIRE)
        assert original == 600
        assert redeemed_here == redeemed[member.pk]
        assert redeemed_here + expired_here + member.available == original
    for posting in expired_postings:
        ((lot_pk, change),) = changes_of(posting.pk).items()
        assert posting.key == f"expire:{lot_pk}"
        spent_before = -sum(
            Entry.objects.filter(
                lot_id=lot_pk, posting__kind=Posting.Kind.REDEEM
            ).values_list("available_change", flat=True)
        )
        assert -change == Lot.objects.get(pk=lot_pk).points - spent_before
    assert_ledger_healthy()


# The expiry job and a member it skipped -------------------------------------------


def raw_connection():
    """A connection to the test database of its own, outside Django."""
    params = connection.settings_dict
    return psycopg.connect(
        dbname=params["NAME"],
        user=params["USER"],
        password=params["PASSWORD"] or None,
        host=params["HOST"] or None,
        port=params["PORT"] or None,
        autocommit=True,
    )


def blocks_someone(watcher, pid):
    """Whether a backend waits for a lock that backend ``pid`` holds."""
    (count,) = watcher.execute(
        "SELECT count(*) FROM pg_locks WHERE NOT granted "
        "AND %s = ANY(pg_blocking_pids(pid))",
        (pid,),
    ).fetchone()
    return count > 0


def wait_for(condition, what, timeout=20.0):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


def test_the_expiry_job_only_touches_the_members_it_locked():
    """Given member X with a hold (so the expiry job skips X) and member Y, both
    with lots past their date: while the job waits for Y's row lock, X's hold is
    released from another thread. The job has locked X already, so the release
    waits for the job, X's due lot is left for the next run, and the ledger stays
    exact; then X redeems."""
    x, y = new_member(), new_member()
    assert x.pk < y.pk  # the job locks X first, then waits for Y
    for member, due in ((x, 200), (y, 100)):
        give_lots(member, [due], first_confirmed=T0 - timedelta(days=400), tag="D")
        give_lots(member, [100], first_confirmed=T0 - timedelta(days=10))
    hold = holds.hold_points(member=x, basket_id=9500, points=50)
    watcher, holder = raw_connection(), raw_connection()
    job, release = {}, {}

    def run_the_job():
        job["outcomes"] = run_in_processes(perform, 1, args=([[("expire", T0)]],))

    def release_the_hold():
        try:
            release["released"] = holds.release_hold(hold=hold)
        finally:
            connection.close()

    thread = threading.Thread(target=run_the_job)
    releaser = threading.Thread(target=release_the_hold)
    try:
        holder.execute("BEGIN")
        holder.execute(
            "SELECT id FROM oscar_loyalty_member WHERE id = %s FOR UPDATE", (y.pk,)
        )
        thread.start()
        wait_for(
            lambda: blocks_someone(watcher, holder.info.backend_pid),
            "the job waits for Y",
        )
        releaser.start()
        holder.execute("COMMIT")  # the job locks Y and goes on
        thread.join(30)
        releaser.join(30)
    finally:
        holder.close()
        watcher.close()
    assert not thread.is_alive() and not releaser.is_alive()
    assert [outcome.error for outcome in job["outcomes"]] == [None]
    assert release == {"released": True}
    x_due = Lot.objects.get(member=x, points=200)
    assert (x_due.status, x_due.remaining) == (Lot.Status.ACTIVE, 200)
    assert Lot.objects.get(member=y, points=100, expires_at__lt=T0).status == (
        Lot.Status.EXPIRED
    )
    ledger.redeem(member=x, points=30, key="redeem:after-expiry")
    assert_ledger_healthy()


# A refund racing redemptions ---------------------------------------------------------


def test_a_refund_racing_redemptions_takes_back_what_it_can_and_records_the_rest():
    """Given three members with lots of 300, 200 and 100 points, when one process
    refunds the 300-point lot, one refunds 150 of the 200-point lot and six redeem
    random amounts, all at once, then each member's ledger is what a careful
    accountant computes for the order the postings took: available is
    max(0, 600 − redeemed − refunded), and each refund's shortfall is what could not
    be taken back."""
    rng = random.Random(SEED + 2)
    members, lots_of, operations = [], {}, {}
    for _ in range(3):
        member, lots = member_with([300, 200, 100])
        members.append(member)
        lots_of[member.pk] = lots
    plan = [[] for _ in range(8)]
    for index, member in enumerate(members):
        first, second, _ = fifo_order(lots_of[member.pk])
        refunds = [(first, 300), (second, 150)]
        for process, (lot, points) in enumerate(refunds):
            key = f"reverse:refund-{index}-{process}:{lot.order_line_id}"
            operations[key] = ("refund", lot.pk, points)
            plan[process].append(("reverse", lot.pk, points, key))
        for process in range(2, 8):
            key = f"redeem:refund-race-{index}-{process}"
            operations[key] = ("redeem", rng.randint(30, 150))
            plan[process].append(("redeem", member.pk, operations[key][1], key))
    for operations_of_one_process in plan:
        rng.shuffle(operations_of_one_process)

    results = run(plan)

    refused = defaultdict(list)
    for process_plan, outcomes in zip(plan, results, strict=True):
        for operation, outcome in zip(process_plan, outcomes, strict=True):
            if outcome[0] != "ok":
                assert outcome[:2] == ("refused", "InsufficientPoints")
                refused[operation[1]].append(operation[2])
    for member in members:
        books = Accountant(lots_of[member.pk])
        redeemed = refunded = shortfall = 0
        postings = Posting.objects.filter(
            member=member, kind__in=[Posting.Kind.REDEEM, Posting.Kind.REVERSE]
        ).order_by("pk")  # the member's row lock serialises them in this order
        for posting in postings:
            operation = operations[posting.key]
            if operation[0] == "redeem":
                changes, expected_shortfall = books.redeem(operation[1])
                redeemed += operation[1]
            else:
                changes, expected_shortfall = books.refund(*operation[1:])
                refunded += operation[2]
            assert changes_of(posting.pk) == changes, posting.key
            assert posting.shortfall == expected_shortfall, posting.key
            shortfall += posting.shortfall
        member.refresh_from_db()
        assert member.available == books.available == max(0, 600 - redeemed - refunded)
        assert shortfall == max(0, redeemed + refunded - 600)
        assert member.lifetime_earned == 600 - refunded
        assert all(points > member.available for points in refused[member.pk])
        for lot in lots_of[member.pk]:
            lot.refresh_from_db()
            assert lot.remaining == books.lots[lot.pk]["remaining"]
            assert lot.reversed == books.lots[lot.pk]["reversed"]
    assert_ledger_healthy()


# Two members, one basket -------------------------------------------------------------


def race_for_the_same_baskets(first_basket=9300):
    """Two members with 500 points each; 8 processes (4 for each member) hold 100
    points on the same five baskets, in the same order, at once."""
    baskets = [first_basket + i for i in range(5)]
    members = [member_with([300, 200])[0] for _ in range(2)]
    plan = [
        [("hold", members[i % 2].pk, basket, 100) for basket in baskets]
        for i in range(8)
    ]
    return baskets, members, plan, run(plan)


def test_two_members_holding_one_basket_at_once_leave_one_active_hold():
    """When two members (a merged basket) hold points for the same baskets at once,
    then each basket ends with one active hold, the other holds are released, and
    each member's held points are the sum of their active holds."""
    baskets, members, plan, results = race_for_the_same_baskets()

    outcomes = [outcome for per_process in results for outcome in per_process]
    assert {outcome[0] for outcome in outcomes} <= {"ok", "database-error"}
    held = Counter()
    for basket in baskets:
        (hold,) = Hold.objects.filter(basket_id=basket, status=Hold.Status.ACTIVE)
        assert hold.points == 100
        held[hold.member_id] += hold.points
        assert set(
            Hold.objects.filter(basket_id=basket)
            .exclude(pk=hold.pk)
            .values_list("status", flat=True)
        ) <= {Hold.Status.RELEASED}
    for member in members:
        member.refresh_from_db()
        assert (member.available, member.held) == (500, held[member.pk])
    assert sum(held.values()) == 100 * len(baskets)
    assert_ledger_healthy()


def test_two_members_holding_one_basket_at_once_never_get_a_database_error():
    """A caller of hold_points gets a hold or a refusal, never a database error
    (up to three rounds of the race, stopping at the first error)."""
    failures = []
    for round_number in range(3):
        _, _, _, results = race_for_the_same_baskets(9400 + 10 * round_number)
        outcomes = [outcome for per_process in results for outcome in per_process]
        failures = [outcome for outcome in outcomes if outcome[0] != "ok"]
        if failures:
            break

    assert failures == []


# Joining the programme ---------------------------------------------------------------


def test_concurrent_get_or_create_member_for_one_user_makes_one_member():
    user = UserFactory()

    (outcomes,) = zip(*run([[("join", user.pk)]] * 8), strict=True)

    member = Member.objects.get(user=user)
    assert set(outcomes) == {("ok", member.pk)}
    assert Member.objects.filter(user=user).count() == 1
    assert_ledger_healthy()
