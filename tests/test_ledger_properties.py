"""Property tests of the points ledger: random sequences of operations against a model.

``LedgerMachine`` drives the services (earn, confirm, hold, release, capture, redeem,
cancel, refund, expire, release stale holds, adjust) in random order with a simulated
clock passed as ``now=`` to every call, and keeps a pure-Python model of each
member's lots and holds. After every step the database must equal the model, the
ledger check must find no drift and no balance may be negative. A refused operation
must change neither the model nor the database.

Hypothesis runs a state machine through ``run_state_machine_as_test``, which does not
call a test case's per-example hooks, so the machine itself opens a savepoint when an
example starts and rolls it back in ``teardown()``: each example starts from an
empty ledger. The runs are derandomized, so CI sees the same examples every time.
"""

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
from django.db import transaction
from django.test import override_settings
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import django as hypothesis_django
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from oscar_loyalty import jobs, rules
from oscar_loyalty.audit import find_drift
from oscar_loyalty.exceptions import HoldNotActive, InsufficientPoints
from oscar_loyalty.models import Entry, Hold, Lot, Member, Posting
from oscar_loyalty.services import holds, ledger
from oscar_loyalty.services.members import get_or_create_member
from tests.factories import UserFactory

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
HOLD_TIMEOUT_MINUTES = 30
MAX_MEMBERS = 3
BASKETS = range(1, 4)
#: The basket of a checkout that applies points and places the order in one go.
CHECKOUT_BASKET = 9
ACTIVE, PENDING = Lot.Status.ACTIVE, Lot.Status.PENDING
EXPIRED, REVERSED = Lot.Status.EXPIRED, Lot.Status.REVERSED

# A short expiry, so lots expire within a run. The machine changes it as it goes.
POLICY = override_settings(
    OSCAR_LOYALTY_EXPIRY_MONTHS=1,
    OSCAR_LOYALTY_EXPIRY_ROUNDING="none",
    OSCAR_LOYALTY_HOLD_TIMEOUT_MINUTES=HOLD_TIMEOUT_MINUTES,
)
# Rounded to the month's end, lots confirmed in the same month expire at the same
# moment, so their ties are broken by id.
MONTH_END = override_settings(OSCAR_LOYALTY_EXPIRY_ROUNDING="month_end")

# Cancelling an order after its points were spent, or restoring a redemption, needs
# a longer run than most paths: 50 runs of up to 50 steps take about 30 s on SQLite
# and 60 s on PostgreSQL on the 2-core machine. Runs are derandomized: the same
# examples every time (they change only when this file's machine changes).
MACHINE_SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=50,
    stateful_step_count=50,
    suppress_health_check=[HealthCheck.too_slow],
)

FIFO_SETTINGS = settings(
    derandomize=True,
    database=None,
    deadline=None,
    max_examples=40,
    suppress_health_check=[HealthCheck.too_slow],
)

#: How much of what a member can spend a step asks for, in percent: mostly a
#: possible amount, often all of it, sometimes more than there is (a refusal).
SHARE = st.sampled_from([1, 25, 50, 75, 100, 100, 150])


def share_of(spendable, percent):
    if percent > 100:
        return spendable + percent - 100
    return max(1, spendable * percent // 100)


# The model ----------------------------------------------------------------------------


@dataclass
class ModelLot:
    pk: int
    member: int
    points: int
    remaining: int
    status: str
    expires_at: datetime | None = None
    order: str = ""
    source: str = Lot.Source.EARN
    reversed: int = 0
    expired: int = 0


@dataclass
class ModelHold:
    pk: int
    member: int
    basket: int
    points: int
    expires_at: datetime
    status: str = Hold.Status.ACTIVE


@dataclass
class ModelMember:
    pk: int
    available: int = 0
    held: int = 0
    pending: int = 0
    lifetime_earned: int = 0

    @property
    def spendable(self):
        return self.available - self.held


@dataclass
class ModelOrder:
    number: str
    member: int
    lots: list[int] = field(default_factory=list)
    #: (lot id, points) the order's redemption took from each lot.
    redeemed: list[tuple[int, int]] = field(default_factory=list)
    restored: bool = False


def database_state():
    """Every row a refused operation must leave alone."""
    return (
        list(Posting.objects.order_by("pk").values_list("pk", "key", "shortfall")),
        Entry.objects.count(),
        list(
            Lot.objects.order_by("pk").values_list(
                "pk", "status", "remaining", "reversed", "expires_at"
            )
        ),
        list(Hold.objects.order_by("pk").values_list("pk", "status", "points")),
        list(
            Member.objects.order_by("pk").values_list(
                "pk", "available", "held", "pending", "lifetime_earned"
            )
        ),
    )


class LedgerMachine(RuleBasedStateMachine):
    """Up to three members, their orders, baskets and staff adjustments, on a clock
    that only moves forward. Rules that spend pick members with points to spend and
    sometimes ask for more than there is, so refusals are exercised too."""

    def __init__(self):
        super().__init__()
        # One savepoint per example, rolled back in teardown().
        self.savepoint = transaction.atomic()
        self.savepoint.__enter__()
        self.now = T0
        self.members: dict[int, ModelMember] = {}
        self.lots: dict[int, ModelLot] = {}
        self.holds: dict[int, ModelHold] = {}
        self.orders: dict[str, ModelOrder] = {}
        self.shortfalls: dict[str, int] = {}
        self.used_keys: set[str] = set()
        self.serial = 0
        self.policy = None

    def teardown(self):
        if self.policy is not None:
            self.policy.disable()
        transaction.set_rollback(True)
        self.savepoint.__exit__(None, None, None)

    # Helpers

    def next_serial(self):
        self.serial += 1
        return self.serial

    def member_at(self, index):
        pks = sorted(self.members)
        return self.members[pks[index % len(pks)]]

    def can_spend(self):
        return any(member.spendable for member in self.members.values())

    def spender_at(self, index):
        """One of the members with points to spend (steps that spend pick these, so
        few of them are refusals of a member with nothing at all)."""
        pks = sorted(pk for pk, member in self.members.items() if member.spendable)
        return self.members[pks[index % len(pks)]]

    def db_member(self, model_member):
        return Member.objects.get(pk=model_member.pk)

    def spend_fifo(self, member, points):
        """Take ``points`` from the member's active lots by (expires_at, id)."""
        taken = []
        lots = sorted(
            (
                lot
                for lot in self.lots.values()
                if lot.member == member.pk and lot.status == ACTIVE and lot.remaining
            ),
            key=lambda lot: (lot.expires_at, lot.pk),
        )
        for lot in lots:
            if points == 0:
                break
            take = min(lot.remaining, points)
            lot.remaining -= take
            points -= take
            taken.append((lot.pk, take))
        assert points == 0, "the model let a member spend points it does not have"
        return taken

    def active_hold_of_basket(self, basket):
        for hold in self.holds.values():
            if hold.basket == basket and hold.status == Hold.Status.ACTIVE:
                return hold
        return None

    def close_hold(self, hold, status):
        hold.status = status
        self.members[hold.member].held -= hold.points

    def refused(self, exception, call):
        """``call`` must raise ``exception`` and write nothing."""
        before = database_state()
        with pytest.raises(exception):
            call()
        assert database_state() == before

    def reverse(self, lot, points, key):
        """The model of ``ledger.reverse_lot``."""
        if key in self.used_keys:
            return
        self.used_keys.add(key)
        member = self.members[lot.member]
        owed = min(points, lot.points - lot.reversed - lot.expired)
        if owed <= 0:
            return
        if lot.status == PENDING:
            lot.remaining -= owed
            member.pending -= owed
            taken = owed
        else:
            # Held points can be taken back too; the newest holds then go.
            from_lot = min(owed, lot.remaining)
            lot.remaining -= from_lot
            from_others = max(0, min(owed - from_lot, member.available - from_lot))
            if from_others:
                self.spend_fifo(member, from_others)
            taken = from_lot + from_others
            member.available -= taken
            newest_first = sorted(
                (
                    hold
                    for hold in self.holds.values()
                    if hold.member == member.pk and hold.status == Hold.Status.ACTIVE
                ),
                key=lambda hold: (hold.expires_at, hold.pk),
                reverse=True,
            )
            for hold in newest_first:
                if member.held <= member.available:
                    break
                self.close_hold(hold, Hold.Status.RELEASED)
        lot.reversed += owed
        if lot.remaining == 0 and lot.status in (PENDING, ACTIVE):
            lot.status = REVERSED
        member.lifetime_earned -= owed
        if taken < owed:
            self.shortfalls[key] = owed - taken

    # Rules

    @initialize()
    def first_member(self):
        self.new_member(welcome=500)

    @precondition(lambda self: len(self.members) < MAX_MEMBERS)
    @rule(welcome=st.sampled_from([0, 100, 500]))
    def new_member(self, welcome):
        """A member joins, with a welcome bonus added by staff (if any)."""
        member = get_or_create_member(UserFactory())
        self.members[member.pk] = ModelMember(pk=member.pk)
        if welcome:
            self.adjust_by(self.members[member.pk], welcome)

    @rule(
        minutes=st.sampled_from(
            [
                1,
                HOLD_TIMEOUT_MINUTES - 1,
                HOLD_TIMEOUT_MINUTES,
                60 * 24,
                60 * 24 * 20,
                60 * 24 * 45,
            ]
        )
    )
    def advance_clock(self, minutes):
        self.now += timedelta(minutes=minutes)

    @rule(
        months=st.sampled_from([1, 6]), rounding=st.sampled_from(["none", "month_end"])
    )
    def owner_changes_the_expiry_policy(self, months, rounding):
        """Lots confirmed from now on expire after ``months``: a lot made later can
        expire before one made earlier, so spending order is not creation order."""
        if self.policy is not None:
            self.policy.disable()
        self.policy = override_settings(
            OSCAR_LOYALTY_EXPIRY_MONTHS=months, OSCAR_LOYALTY_EXPIRY_ROUNDING=rounding
        )
        self.policy.enable()

    @rule(
        with_points=st.booleans(),
        hold_index=st.integers(0, 50),
        member_index=st.integers(0, MAX_MEMBERS - 1),
        lines=st.lists(st.integers(1, 300), min_size=1, max_size=3),
        complete=st.booleans(),
        used=st.sampled_from([100, 50]),
    )
    def place_order(self, with_points, hold_index, member_index, lines, complete, used):
        """Checkout. ``with_points``: a basket holding points is checked out and its
        hold captured for its member's order (with no such basket, the member applies
        half their points first); the discount uses ``used`` % of the hold (the
        basket shrank under the share limit) and the rest goes back. Each line earns
        a lot; ``complete`` confirms the order's points at once."""
        hold = None
        if with_points:
            active = [
                hold
                for _, hold in sorted(self.holds.items())
                if hold.status == Hold.Status.ACTIVE
            ]
            if active:
                hold = active[hold_index % len(active)]
            elif (buyer := self.member_at(member_index)).spendable:
                hold = self.hold(buyer, CHECKOUT_BASKET, share_of(buyer.spendable, 50))
        member = self.members[hold.member] if hold else self.member_at(member_index)
        number = f"O{self.next_serial()}"
        order = self.orders[number] = ModelOrder(number=number, member=member.pk)
        if hold is not None and used == 100:
            holds.capture_hold(
                hold=Hold.objects.get(pk=hold.pk), order_number=number, now=self.now
            )
            self.close_hold(hold, Hold.Status.CAPTURED)
            order.redeemed = self.spend_fifo(member, hold.points)
            member.available -= hold.points
        elif hold is not None:
            points = max(hold.points * used // 100, 1)
            holds.capture_basket(
                user_id=self.db_member(member).user_id,
                basket_id=hold.basket,
                points=points,
                order_number=number,
                now=self.now,
            )
            self.close_hold(hold, Hold.Status.CAPTURED)
            order.redeemed = self.spend_fifo(member, points)
            member.available -= points
        for line, points in enumerate(lines, start=1):
            posting = ledger.earn(
                member=self.db_member(member),
                key=f"earn:{number}:{line}",
                points=points,
                order_number=number,
                order_line_id=line,
                now=self.now,
            )
            lot_pk = posting.entries.get().lot_id
            self.lots[lot_pk] = ModelLot(
                pk=lot_pk,
                member=member.pk,
                points=points,
                remaining=points,
                status=PENDING,
                order=number,
            )
            order.lots.append(lot_pk)
            member.pending += points
            member.lifetime_earned += points
        if complete:
            self.confirm(number)

    def orders_with_pending_lots(self):
        return sorted(
            {lot.order for lot in self.lots.values() if lot.status == PENDING}
        )

    @precondition(lambda self: self.orders_with_pending_lots())
    @rule(order_index=st.integers(0, 50), days_later=st.sampled_from([0, 1, 14]))
    def confirm_order(self, order_index, days_later):
        """An order's return window passes (some days later): its points confirm.
        Orders confirm in any order, so a lot made later can expire first."""
        self.now += timedelta(days=days_later)
        numbers = self.orders_with_pending_lots()
        self.confirm(numbers[order_index % len(numbers)])

    def confirm(self, number):
        ledger.confirm_order(order_number=number, now=self.now)
        for lot_pk in sorted(self.orders[number].lots):
            lot = self.lots[lot_pk]
            if lot.status != PENDING:
                continue
            lot.status = ACTIVE
            lot.expires_at = rules.expiry_for(self.now)
            member = self.members[lot.member]
            member.pending -= lot.remaining
            member.available += lot.remaining

    @precondition(can_spend)
    @rule(
        member_index=st.integers(0, MAX_MEMBERS - 1),
        basket=st.sampled_from(BASKETS),
        percent=SHARE,
    )
    def hold_for_basket(self, member_index, basket, percent):
        member = self.spender_at(member_index)
        previous = self.active_hold_of_basket(basket)
        own_previous = previous if previous and previous.member == member.pk else None
        spendable = member.spendable + (own_previous.points if own_previous else 0)
        self.hold(member, basket, share_of(spendable, percent))

    def hold(self, member, basket, points):
        """``holds.hold_points`` and its model; None when refused."""
        previous = self.active_hold_of_basket(basket)
        own_previous = previous if previous and previous.member == member.pk else None
        spendable = member.spendable + (own_previous.points if own_previous else 0)

        def call():
            return holds.hold_points(
                member=self.db_member(member),
                basket_id=basket,
                points=points,
                now=self.now,
            )

        if points > spendable:
            self.refused(InsufficientPoints, call)
            return None
        hold = call()
        if previous is not None:
            self.close_hold(previous, Hold.Status.RELEASED)
        model = self.holds[hold.pk] = ModelHold(
            pk=hold.pk,
            member=member.pk,
            basket=basket,
            points=points,
            expires_at=self.now + timedelta(minutes=HOLD_TIMEOUT_MINUTES),
        )
        member.held += points
        return model

    @rule(basket=st.sampled_from(BASKETS))
    def release_basket(self, basket):
        hold = self.active_hold_of_basket(basket)

        released = holds.release_basket_hold(basket_id=basket, now=self.now)

        assert released is (hold is not None)
        if hold is not None:
            self.close_hold(hold, Hold.Status.RELEASED)

    @precondition(
        lambda self: any(
            hold.status != Hold.Status.ACTIVE for hold in self.holds.values()
        )
    )
    @rule(hold_index=st.integers(0, 50))
    def capture_a_closed_hold(self, hold_index):
        closed = [
            pk
            for pk, hold in sorted(self.holds.items())
            if hold.status != Hold.Status.ACTIVE
        ]
        hold = Hold.objects.get(pk=closed[hold_index % len(closed)])
        number = f"O{self.next_serial()}"

        self.refused(
            HoldNotActive,
            lambda: holds.capture_hold(hold=hold, order_number=number, now=self.now),
        )

    @precondition(can_spend)
    @rule(member_index=st.integers(0, MAX_MEMBERS - 1), percent=SHARE)
    def redeem(self, member_index, percent):
        member = self.spender_at(member_index)
        points = share_of(member.spendable, percent)
        key = f"reward:{self.next_serial()}"

        def call():
            return ledger.redeem(
                member=self.db_member(member), points=points, key=key, now=self.now
            )

        if points > member.spendable:
            self.refused(InsufficientPoints, call)
            return
        call()
        self.spend_fifo(member, points)
        member.available -= points

    @precondition(lambda self: self.orders)
    @rule(with_points=st.booleans(), order_index=st.integers(0, 50))
    def cancel_order(self, with_points, order_index):
        """Give back what the order redeemed, then reverse what it earned (as
        ``services.orders.cancel_order`` does). Cancelling twice changes nothing.
        ``with_points`` picks an order that redeemed points, if there is one."""
        numbers = sorted(self.orders)
        if with_points:
            numbers = [n for n in numbers if self.orders[n].redeemed] or numbers
        order = self.orders[numbers[order_index % len(numbers)]]
        self.restore_redemption(order)
        for lot_pk in sorted(order.lots):
            lot = self.lots[lot_pk]
            key = f"reverse:{order.number}:{lot_pk}:status"
            ledger.reverse_lot(
                lot=Lot.objects.get(pk=lot_pk), points=lot.points, key=key, now=self.now
            )
            self.reverse(lot, lot.points, key)

    def restore_redemption(self, order):
        restored = ledger.restore_redemption(order_number=order.number, now=self.now)
        assert (restored is None) == (not order.redeemed)
        if not order.redeemed or order.restored:
            return
        order.restored = True
        new_lots = Lot.objects.filter(
            source=Lot.Source.RESTORE, order_number=order.number
        ).order_by("pk")
        member = self.members[order.member]
        for new_pk, (old_pk, points) in zip(
            new_lots.values_list("pk", flat=True), sorted(order.redeemed), strict=True
        ):
            self.lots[new_pk] = ModelLot(
                pk=new_pk,
                member=member.pk,
                points=points,
                remaining=points,
                status=ACTIVE,
                expires_at=self.lots[old_pk].expires_at,
                order=order.number,
                source=Lot.Source.RESTORE,
            )
            member.available += points

    @precondition(
        lambda self: any(lot.source == Lot.Source.EARN for lot in self.lots.values())
    )
    @rule(lot_index=st.integers(0, 50), percent=SHARE)
    def refund_part_of_a_line(self, lot_index, percent):
        earned = sorted(
            pk for pk, lot in self.lots.items() if lot.source == Lot.Source.EARN
        )
        lot = self.lots[earned[lot_index % len(earned)]]
        points = share_of(lot.points, percent)
        key = f"reverse:refund:{self.next_serial()}:{lot.pk}"

        posting = ledger.reverse_lot(
            lot=Lot.objects.get(pk=lot.pk), points=points, key=key, now=self.now
        )

        self.reverse(lot, points, key)
        assert posting.shortfall == self.shortfalls.get(key, 0)

    @rule(
        days_later=st.sampled_from([0, 31, 62, 190]),
        in_range=st.booleans(),
        bounds=st.tuples(st.integers(0, 50), st.integers(0, 50)),
    )
    def expire(self, days_later, in_range, bounds):
        """The nightly expiry job, after the clock has moved on (or not)."""
        self.now += timedelta(days=days_later)
        start_id = end_id = None
        if in_range and self.lots:
            pks = sorted(self.lots)
            low, high = sorted(bounds)
            start_id, end_id = pks[low % len(pks)], pks[high % len(pks)]

        expired = jobs.expire_lots(now=self.now, start_id=start_id, end_id=end_id)

        due = [
            lot
            for pk, lot in sorted(self.lots.items())
            if lot.status == ACTIVE
            and lot.remaining > 0
            and lot.expires_at <= self.now
            and (start_id is None or pk >= start_id)
            and (end_id is None or pk < end_id)
            # Members with points held at checkout wait for the next run.
            and self.members[lot.member].held == 0
        ]
        assert expired == len(due)
        for lot in due:
            self.members[lot.member].available -= lot.remaining
            lot.expired += lot.remaining
            lot.remaining = 0
            lot.status = EXPIRED
            self.used_keys.add(f"expire:{lot.pk}")

    @rule(
        minutes_later=st.sampled_from(
            [0, HOLD_TIMEOUT_MINUTES - 1, HOLD_TIMEOUT_MINUTES]
        )
    )
    def release_stale_holds(self, minutes_later):
        self.now += timedelta(minutes=minutes_later)
        released = jobs.release_stale_holds(now=self.now)

        stale = [
            hold
            for hold in self.holds.values()
            if hold.status == Hold.Status.ACTIVE and hold.expires_at <= self.now
        ]
        assert released == len(stale)
        for hold in stale:
            self.close_hold(hold, Hold.Status.RELEASED)

    def adjust_by(self, member, points):
        """``ledger.adjust`` and its model; refused when taking away too much."""

        def call():
            return ledger.adjust(
                member=self.db_member(member),
                points=points,
                reason="Correction",
                actor=ledger.Actor(id=1, name="Staff"),
                now=self.now,
            )

        if points < 0 and -points > member.spendable:
            self.refused(InsufficientPoints, call)
            return
        posting = call()
        if points > 0:
            lot_pk = posting.entries.get().lot_id
            self.lots[lot_pk] = ModelLot(
                pk=lot_pk,
                member=member.pk,
                points=points,
                remaining=points,
                status=ACTIVE,
                expires_at=rules.expiry_for(self.now),
                source=Lot.Source.ADJUST,
            )
            member.lifetime_earned += points
        else:
            self.spend_fifo(member, -points)
        member.available += points

    @rule(member_index=st.integers(0, MAX_MEMBERS - 1), points=st.integers(1, 300))
    def add_points(self, member_index, points):
        self.adjust_by(self.member_at(member_index), points)

    @precondition(can_spend)
    @rule(member_index=st.integers(0, MAX_MEMBERS - 1), percent=SHARE)
    def take_points_away(self, member_index, percent):
        member = self.spender_at(member_index)
        self.adjust_by(member, -share_of(member.spendable, percent))

    # After every step

    @invariant()
    def balances_equal_the_model(self):
        in_db = {
            pk: (available, held, pending, lifetime)
            for pk, available, held, pending, lifetime in Member.objects.values_list(
                "pk", "available", "held", "pending", "lifetime_earned"
            )
        }
        in_model = {
            pk: (m.available, m.held, m.pending, m.lifetime_earned)
            for pk, m in self.members.items()
        }
        assert in_db == in_model
        for member in self.members.values():
            assert min(member.available, member.held, member.pending) >= 0
            assert member.lifetime_earned >= 0
            assert member.spendable >= 0

    @invariant()
    def the_model_adds_up(self):
        for member in self.members.values():
            lots = [lot for lot in self.lots.values() if lot.member == member.pk]
            assert member.available == sum(
                lot.remaining for lot in lots if lot.status == ACTIVE
            )
            assert member.pending == sum(
                lot.remaining for lot in lots if lot.status == PENDING
            )
            assert member.held == sum(
                hold.points
                for hold in self.holds.values()
                if hold.member == member.pk and hold.status == Hold.Status.ACTIVE
            )

    @invariant()
    def lots_and_holds_equal_the_model(self):
        in_db = {
            pk: (status, remaining, reversed_, expires_at)
            for pk, status, remaining, reversed_, expires_at in Lot.objects.values_list(
                "pk", "status", "remaining", "reversed", "expires_at"
            )
        }
        in_model = {
            pk: (lot.status, lot.remaining, lot.reversed, lot.expires_at)
            for pk, lot in self.lots.items()
        }
        assert in_db == in_model
        assert dict(Hold.objects.values_list("pk", "status")) == {
            pk: hold.status for pk, hold in self.holds.items()
        }
        assert (
            dict(
                Posting.objects.filter(shortfall__gt=0).values_list("key", "shortfall")
            )
            == self.shortfalls
        )

    @invariant()
    def the_ledger_check_finds_no_drift(self):
        assert find_drift() == []


# FIFO -------------------------------------------------------------------------------

EARN = st.tuples(st.just("earn"), st.integers(1, 100), st.integers(0, 90))
REDEEM = st.tuples(st.just("redeem"), st.integers(1, 250), st.just(0))


@POLICY
class TestLedgerProperties(hypothesis_django.TestCase):
    def test_random_operations_keep_the_ledger_equal_to_a_model(self):
        run_state_machine_as_test(LedgerMachine, settings=MACHINE_SETTINGS)

    @MONTH_END
    @FIFO_SETTINGS
    @given(operations=st.lists(st.one_of(EARN, REDEEM), min_size=1, max_size=12))
    def test_redemptions_consume_lots_by_expiry_then_id(self, operations):
        """Whatever was earned and redeemed, each redemption takes from the lots in
        (expires_at, id) order, all of one lot before the next."""
        member = get_or_create_member(UserFactory())
        model = {}  # lot id -> [expires_at, remaining]

        for step, (kind, points, days) in enumerate(operations):
            if kind == "earn":
                # Confirmed on a random day: a later lot may expire first.
                moment = T0 + timedelta(days=days)
                posting = ledger.earn(
                    member=member, key=f"earn:{step}:1", points=points, now=moment
                )
                lot = posting.entries.get().lot
                ledger.confirm_lot(lot=lot, now=moment)
                model[lot.pk] = [rules.expiry_for(moment), points]
                continue
            if points > sum(remaining for _, remaining in model.values()):
                with pytest.raises(InsufficientPoints):
                    ledger.redeem(member=member, points=points, key=f"r:{step}", now=T0)
                continue

            posting = ledger.redeem(
                member=member, points=points, key=f"r:{step}", now=T0
            )

            consumed = list(
                posting.entries.order_by("pk").values_list("lot_id", "available_change")
            )
            expected = []
            for pk in sorted(model, key=lambda pk: (model[pk][0], pk)):
                take = min(model[pk][1], points)
                if take:
                    model[pk][1] -= take
                    points -= take
                    expected.append((pk, -take))
            assert consumed == expected

        assert dict(Lot.objects.values_list("pk", "remaining")) == {
            pk: remaining for pk, (_, remaining) in model.items()
        }
        assert find_drift() == []
