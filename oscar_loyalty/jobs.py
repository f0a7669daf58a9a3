"""Set-based batch jobs over the ledger, run by the Celery tasks.

Each job works on a primary-key range so many tasks can share a large table, locks
the members it touches in primary-key order, and is idempotent by construction
(status guards and unique posting keys): safe on several workers and a double beat.
"""

import logging
from collections import defaultdict
from datetime import timedelta
from functools import partial

from django.core.exceptions import ImproperlyConfigured
from django.db import connection, transaction
from django.db.models import Exists, F, OuterRef, Q, Subquery, Sum
from django.utils import timezone
from oscar.core.loading import get_model

from . import consent, notifications, rules
from .conf import PREFIX, loyalty_settings
from .models import Entry, Hold, Lot, Member, Posting
from .services import tiers

logger = logging.getLogger(__name__)

#: Lots written per statement: well within every database's parameter limit.
WRITE_BATCH = 5_000


def expire_lots(*, now=None, start_id=None, end_id=None):
    """Expire active lots past their date in the lot-id range [start_id, end_id).

    Set-based: members locked in primary-key order by one statement, then on
    PostgreSQL one more statement does the rest (see :func:`_expire_postgresql`);
    elsewhere, per batch of lots one statement lowers the balances, two insert a
    posting and an entry per lot, and one closes the lots. Members with points
    held at checkout are left for the next run (their hold is captured or
    released within ``OSCAR_LOYALTY_HOLD_TIMEOUT_MINUTES``), so expiry never
    breaks a checkout.
    Idempotent: an expired lot is no longer active and posting keys are unique.
    Returns the number of lots expired.
    """
    now = now or timezone.now()
    due = Lot.objects.filter(
        status=Lot.Status.ACTIVE, remaining__gt=0, expires_at__lte=now
    )
    if start_id is not None:
        due = due.filter(id__gte=start_id)
    if end_id is not None:
        due = due.filter(id__lt=end_id)
    with transaction.atomic():
        # Lock every member with due lots, held or not: the choice made next
        # (members holding nothing) cannot change until the transaction ends.
        locked = set(
            Member.objects.select_for_update()
            .filter(pk__in=due.values("member_id"))
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        if connection.vendor == "postgresql":
            return _expire_postgresql(locked, now, start_id, end_id)
        # A lot that fell due after the lock (say, points restored with a past
        # expiry date) belongs to a member not locked here: the next run takes it.
        lots = [
            row
            for row in due.filter(member__held=0).values_list(
                "id", "member_id", "remaining"
            )
            if row[1] in locked
        ]
        for start in range(0, len(lots), WRITE_BATCH):
            _expire_batch(lots[start : start + WRITE_BATCH], now)
    return len(lots)


#: One statement expiring a range's due lots of the members locked beforehand.
EXPIRE_SQL = """
WITH due AS (
    SELECT lot.id, lot.member_id, lot.remaining,
        nextval(pg_get_serial_sequence(%(posting_table)s, 'id')) AS posting_id
    FROM {lot} AS lot JOIN {member} AS member ON member.id = lot.member_id
    WHERE lot.id >= %(start)s AND lot.id < %(end)s
        AND lot.status = %(active)s AND lot.remaining > 0
        AND lot.expires_at <= %(now)s
        AND member.held = 0 AND lot.member_id = ANY(%(locked)s)
), closed AS (
    UPDATE {lot} AS lot SET status = %(expired)s, remaining = 0
    FROM due WHERE lot.id = due.id AND lot.id >= %(start)s AND lot.id < %(end)s
), posted AS (
    INSERT INTO {posting} (id, key, kind, member_id, created_at, order_number,
        reason, actor_name, shortfall)
    SELECT posting_id, 'expire:' || id, %(kind)s, member_id, %(now)s, '', '', '', 0
    FROM due
), entered AS (
    INSERT INTO {entry} (posting_id, member_id, lot_id, available_change,
        pending_change)
    SELECT posting_id, member_id, id, -remaining, 0 FROM due
), balances AS (
    UPDATE {member} AS member SET available = member.available - due_by_member.total
    FROM (
        SELECT member_id, sum(remaining) AS total FROM due GROUP BY member_id
    ) AS due_by_member
    WHERE member.id = due_by_member.member_id
)
SELECT count(*) FROM due
"""


def _expire_postgresql(locked, now, start_id, end_id):
    """PostgreSQL: the whole range in one statement, the lots never leave the database.

    Building a model instance per posting and entry, and sending 5,000 ids per
    statement, cost more than all the SQL of a large expiry; here the database
    writes the postings, entries and balances from the lot rows themselves. The
    lots are those of the members locked above (``ANY(locked)``): a lot that fell
    due since belongs to a member not locked here and waits for the next run.
    """
    quote = connection.ops.quote_name
    sql = EXPIRE_SQL.format(
        lot=quote(Lot._meta.db_table),
        member=quote(Member._meta.db_table),
        posting=quote(Posting._meta.db_table),
        entry=quote(Entry._meta.db_table),
    )
    with connection.cursor() as cursor:
        cursor.execute(
            sql,
            {
                "posting_table": Posting._meta.db_table,
                "start": start_id if start_id is not None else -(2**63),
                "end": end_id if end_id is not None else 2**63 - 1,
                "now": now,
                "active": Lot.Status.ACTIVE.value,
                "expired": Lot.Status.EXPIRED.value,
                "kind": Posting.Kind.EXPIRE.value,
                "locked": sorted(locked),
            },
        )
        return cursor.fetchone()[0]


def _expire_batch(lots, now):
    """Post and apply the expiry of ``lots``: (id, member_id, remaining) rows."""
    lot_ids = [lot_id for lot_id, _, _ in lots]
    per_member = (
        Lot.objects.filter(id__in=lot_ids, member_id=OuterRef("pk"))
        .values("member_id")
        .annotate(total=Sum("remaining"))
        .values("total")
    )
    Member.objects.filter(pk__in={member_id for _, member_id, _ in lots}).update(
        available=F("available") - Subquery(per_member)
    )
    postings = Posting.objects.bulk_create(
        [
            Posting(
                key=f"expire:{lot_id}",
                kind=Posting.Kind.EXPIRE,
                member_id=member_id,
                created_at=now,
            )
            for lot_id, member_id, _ in lots
        ]
    )
    Entry.objects.bulk_create(
        [
            Entry(
                posting=posting,
                member_id=member_id,
                lot_id=lot_id,
                available_change=-remaining,
            )
            for posting, (lot_id, member_id, remaining) in zip(
                postings, lots, strict=True
            )
        ]
    )
    Lot.objects.filter(id__in=lot_ids).update(status=Lot.Status.EXPIRED, remaining=0)


@transaction.atomic
def release_stale_holds(*, now=None):
    """Release every hold past its timeout, set-based; returns how many.

    A hold whose basket is frozen (the shopper is paying, perhaps on a payment
    provider's site) is kept for up to :data:`FROZEN_BASKET_GRACE`, so the order
    placed on their return still has its points. The holds are chosen once, under
    the members' locks, and both updates work on exactly those.
    """
    now = now or timezone.now()
    Basket = get_model("basket", "Basket")
    paying = Basket.objects.filter(pk=OuterRef("basket_id"), status=Basket.FROZEN)
    stale = Hold.objects.filter(status=Hold.Status.ACTIVE, expires_at__lte=now).exclude(
        Exists(paying) & Q(created_at__gt=now - FROZEN_BASKET_GRACE)
    )
    list(
        Member.objects.select_for_update()
        .filter(pk__in=stale.values("member_id"))
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    ids = list(stale.values_list("pk", flat=True))
    if not ids:
        return 0
    chosen = Hold.objects.filter(pk__in=ids, status=Hold.Status.ACTIVE)
    per_member = (
        chosen.filter(member_id=OuterRef("pk"))
        .values("member_id")
        .annotate(total=Sum("points"))
        .values("total")
    )
    Member.objects.filter(pk__in=chosen.values("member_id")).update(
        held=F("held") - Subquery(per_member)
    )
    return chosen.update(status=Hold.Status.RELEASED, closed_at=now)


#: How long a frozen basket (payment under way) keeps its hold past the timeout.
FROZEN_BASKET_GRACE = timedelta(hours=24)


# Confirming after the return window -----------------------------------------------


def return_window_days():
    """``OSCAR_LOYALTY_CONFIRM_AFTER_DAYS``, checked; None when only statuses confirm.

    Anything but a whole number of days (0 or more) is refused with a message that
    names the setting, rather than confirming points at a guessed date.
    """
    value = loyalty_settings.CONFIRM_AFTER_DAYS
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ImproperlyConfigured(
            f"{PREFIX}CONFIRM_AFTER_DAYS must be a whole number of days (0 or more) "
            f"or None, not {value!r}."
        )
    return value


def returned_lots_due(now):
    """Pending lots whose return window has passed at ``now`` (None: no window).

    A lot's ``created_at`` is when its order was placed. Lots of orders now in one
    of the owner's reverse statuses are left alone: the cancellation takes them
    back, and confirming first would only make it take them from spendable points.
    """
    days = return_window_days()
    if days is None:
        return None
    Order = get_model("order", "Order")
    reversing = Order.objects.filter(
        number=OuterRef("order_number"),
        status__in=list(loyalty_settings.REVERSE_STATUSES),
    )
    return Lot.objects.filter(
        ~Exists(reversing),
        status=Lot.Status.PENDING,
        created_at__lte=now - timedelta(days=days),
    )


def confirm_returned_lots(*, now=None, start_id=None, end_id=None):
    """Confirm the pending lots past their return window in the lot-id range.

    The set-based twin of :func:`~oscar_loyalty.services.ledger.confirm_lot`: the
    same writes (lot made active with ``confirmed_at`` and its expiry date, a
    ``confirm:<lot>`` posting, an entry moving its points from pending to available,
    the cached balances) for a batch of lots in a fixed number of statements. The
    members are locked in primary-key order first, as every ledger writer does, and
    the lots are chosen again under those locks, so a concurrent confirmation,
    reversal or a second worker cannot slip in between. Idempotent: a confirmed lot
    is no longer pending, and its posting key is unique. Returns the lots confirmed.
    """
    now = now or timezone.now()
    due = returned_lots_due(now)
    if due is None:
        return 0
    if start_id is not None:
        due = due.filter(id__gte=start_id)
    if end_id is not None:
        due = due.filter(id__lt=end_id)
    with transaction.atomic():
        locked = set(
            Member.objects.select_for_update()
            .filter(pk__in=due.values("member_id"))
            .order_by("pk")
            .values_list("pk", flat=True)
        )
        # A lot of a member not locked above (earned since) waits for the next run.
        lots = [
            row
            for row in due.order_by("id").values_list(
                "id", "member_id", "remaining", "order_number"
            )
            if row[1] in locked
        ]
        expires_at = rules.expiry_for(now)
        confirmed = []
        for start in range(0, len(lots), WRITE_BATCH):
            confirmed += _confirm_batch(
                lots[start : start + WRITE_BATCH], now, expires_at
            )
        tell_confirmed(confirmed)
    # Their orders now count towards tiers: members who reach a higher one move up
    # now, as on a confirm status (after the ledger's transaction, in batches).
    tiers.upgrade_members({row[1] for row in lots}, now=now)
    return len(confirmed)


def tell_confirmed(lots):
    """Tell each member the points just confirmed, once this commits (one task
    for the batch); ``lots`` are (id, member_id, remaining, order_number) rows."""
    points = defaultdict(int)
    for _id, member_id, remaining, _order in lots:
        points[member_id] += remaining
    notifications.notify(
        "points_confirmed",
        list(points),
        {pk: {"points": total} for pk, total in points.items()},
    )


def _confirm_batch(lots, now, expires_at):
    """Confirm ``lots``, (id, member_id, remaining, order_number) rows; returns
    the rows confirmed."""
    posted = set(
        Posting.objects.filter(key__in=[f"confirm:{row[0]}" for row in lots])
        .order_by()
        .values_list("key", flat=True)
    )
    # Like confirm_lot, a lot whose confirmation is already posted is left alone.
    lots = [row for row in lots if f"confirm:{row[0]}" not in posted]
    if not lots:
        return []
    lot_ids = [row[0] for row in lots]
    per_member = Subquery(
        Lot.objects.filter(id__in=lot_ids, member_id=OuterRef("pk"))
        .order_by()
        .values("member_id")
        .annotate(total=Sum("remaining"))
        .values("total")
    )
    Member.objects.filter(pk__in={row[1] for row in lots}).update(
        pending=F("pending") - per_member, available=F("available") + per_member
    )
    postings = Posting.objects.bulk_create(
        [
            Posting(
                key=f"confirm:{lot_id}",
                kind=Posting.Kind.CONFIRM,
                member_id=member_id,
                created_at=now,
                order_number=order_number,
            )
            for lot_id, member_id, _, order_number in lots
        ]
    )
    Entry.objects.bulk_create(
        [
            Entry(
                posting=posting,
                member_id=member_id,
                lot_id=lot_id,
                available_change=remaining,
                pending_change=-remaining,
            )
            for posting, (lot_id, member_id, remaining, _) in zip(
                postings, lots, strict=True
            )
            if remaining
        ]
    )
    Lot.objects.filter(id__in=lot_ids, status=Lot.Status.PENDING).update(
        status=Lot.Status.ACTIVE, confirmed_at=now, expires_at=expires_at
    )
    return lots


# Reminders before points expire -------------------------------------------------

#: The most days ``Lot.reminded_days`` (a small integer) can record.
MAX_REMINDER_DAYS = 32_767


def reminder_windows():
    """``OSCAR_LOYALTY_REMINDER_DAYS``, checked, smallest first; [] turns them off.

    Anything but whole numbers of days is refused with a message naming the
    setting: a typo must neither stop the e-mails silently nor multiply them.
    """
    value = loyalty_settings.REMINDER_DAYS
    if not value:
        return []
    days = list(value) if isinstance(value, list | tuple | set | frozenset) else None
    if days is None or any(
        isinstance(day, bool)
        or not isinstance(day, int)
        or not 0 < day <= MAX_REMINDER_DAYS
        for day in days
    ):
        raise ImproperlyConfigured(
            f"{PREFIX}REMINDER_DAYS must be a list of whole numbers of days from 1 "
            f"to {MAX_REMINDER_DAYS}, such as (30, 15, 7), not {value!r}."
        )
    return sorted(set(days))


def _reminder_bands(now, windows):
    """(days, after, until) per window, smallest first: expiry in (after, until].

    A lot is in the smallest window that holds its expiry date, so the bands do not
    overlap: a lot first seen five days before it expires is only in the 7-day
    window and gets one e-mail, not three.
    """
    bands, after = [], now
    for days in windows:
        until = now + timedelta(days=days)
        bands.append((days, after, until))
        after = until
    return bands


def reminders_due(now, windows=None):
    """Lots due a reminder at ``now`` (a queryset), or None when reminders are off.

    Active lots with points left that expire within the largest window, of members
    who agreed to reminders and whose account is active, and that were not yet
    reminded in the window they are in now (``reminded_days`` empty or larger).
    """
    windows = reminder_windows() if windows is None else windows
    if not windows:
        return None
    bands = _reminder_bands(now, windows)
    not_told = Q()
    for days, after, until in bands:
        not_told |= Q(expires_at__gt=after, expires_at__lte=until) & (
            Q(reminded_days__isnull=True) | Q(reminded_days__gt=days)
        )
    consenting = consent.consenting(consent.Purpose.REMINDERS)
    return Lot.objects.filter(
        not_told,
        status=Lot.Status.ACTIVE,
        remaining__gt=0,
        expires_at__gt=now,
        expires_at__lte=bands[-1][2],
        member_id__in=consenting.values("pk"),
    )


class _RemindedElsewhere(Exception):
    """Another run marked some of the chosen lots first: roll this chunk back."""


def remind_expiring_lots(*, now=None, start_id=None, end_id=None):
    """Mark the lots due a reminder and e-mail their members, for member ids in
    [start_id, end_id); returns how many members are e-mailed.

    One e-mail per member per run, listing every due lot's points by expiry date:
    the range is one of members, not lots, so a member's lots are never split
    between two tasks. Once per lot and window, on several workers and a double
    beat: the due lots are locked (``SKIP LOCKED`` where the database has it, so a
    second worker passes them by instead of waiting) and marked by an UPDATE that
    repeats the guard. Where rows cannot be locked (SQLite serialises writers
    instead), an UPDATE that changes fewer rows than were chosen means another run
    got there first, and this chunk is rolled back and left to the next run.
    Members are not locked: the mark is no ledger figure, and ledger writers never
    write a lot's ``reminded_days``.

    Sending happens only after the marks commit (``transaction.on_commit``), so
    delivery is at most once: a crash after the commit loses those reminders rather
    than sending them twice. A reminder is a courtesy and the next window brings
    another; a duplicate would teach members to ignore them, and an e-mail cannot
    be unsent, whereas a rolled-back mark can be retried.
    """
    now = now or timezone.now()
    due = reminders_due(now)
    if due is None:
        return 0
    windows = reminder_windows()
    if start_id is not None:
        due = due.filter(member_id__gte=start_id)
    if end_id is not None:
        due = due.filter(member_id__lt=end_id)
    locking = {"skip_locked": connection.features.has_select_for_update_skip_locked}
    try:
        with transaction.atomic():
            rows = list(
                due.select_for_update(**locking)
                .order_by("id")
                .values_list("id", "member_id", "remaining", "expires_at")
            )
            _mark_reminded(rows, _reminder_bands(now, windows))
            reminders = _reminders_by_member(rows)
            if reminders:
                transaction.on_commit(
                    partial(notifications.send_expiry_reminders, reminders)
                )
    except _RemindedElsewhere:
        logger.warning(
            "Expiry reminders for members %s to %s were marked by another run; "
            "the next run sends what is left.",
            start_id,
            end_id,
        )
        return 0
    return len(reminders)


def _mark_reminded(rows, bands):
    """Record on each lot of ``rows`` the window it is reminded in now."""
    by_window = defaultdict(list)
    for lot_id, _, _, expires_at in rows:
        days = next(days for days, after, until in bands if after < expires_at <= until)
        by_window[days].append(lot_id)
    for days, lot_ids in by_window.items():
        for start in range(0, len(lot_ids), WRITE_BATCH):
            batch = lot_ids[start : start + WRITE_BATCH]
            marked = (
                Lot.objects.filter(id__in=batch)
                .filter(Q(reminded_days__isnull=True) | Q(reminded_days__gt=days))
                .update(reminded_days=days)
            )
            if marked != len(batch):
                raise _RemindedElsewhere()


def _reminders_by_member(rows):
    """{member id: [(expiry date in the shop's time zone, points), ...]} by date."""
    shop_zone = timezone.get_default_timezone()
    per_member = defaultdict(lambda: defaultdict(int))
    for _, member_id, remaining, expires_at in rows:
        day = timezone.localtime(expires_at, shop_zone).date()
        per_member[member_id][day] += remaining
    return {
        member_id: sorted(per_day.items()) for member_id, per_day in per_member.items()
    }
