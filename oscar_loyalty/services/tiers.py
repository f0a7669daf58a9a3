"""Tiers: qualifying activity, upgrades, the periodic review and staff changes.

A member's tier is the highest whose threshold their *qualifying value* reaches:
confirmed activity placed within the qualifying window, measured on the
programme's basis (``OSCAR_LOYALTY_TIER_BASIS``):

* ``spend``: the orders' spend after discounts and refunds (:class:`OrderActivity`);
* ``orders``: how many of those orders were not refunded in full;
* ``points``: the points those orders earned, less what was reversed.

Upgrades happen as soon as an order is confirmed; downgrades only at the periodic
review (:func:`review`), after a grace period and never while the member's tier is
protected. Every change is a :class:`TierChange` row, mirrors the tier into the
tier groups (cumulative) and sends :data:`~oscar_loyalty.signals.tier_changed`
after commit.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.db import transaction
from django.db.models import Count, F, Q, Sum
from django.utils import timezone

from .. import rules
from ..conf import loyalty_settings
from ..exceptions import TierProtectionInPast, TierReasonRequired
from ..models import Lot, Member, OrderActivity, Tier, TierChange
from ..signals import tier_changed
from .ledger import SYSTEM, lock_member

logger = logging.getLogger(__name__)

ZERO = Decimal(0)
CENT = Decimal("0.01")


# Qualifying activity ---------------------------------------------------------------


def _placed_within(field, now, window):
    """``field`` within ``window`` = (start, end), end excluded; default: the
    qualifying window up to and including ``now``."""
    if window is None:
        return Q(
            **{f"{field}__gte": rules.tier_window_start(now), f"{field}__lte": now}
        )
    start, end = window
    return Q(**{f"{field}__gte": start, f"{field}__lt": end})


def counted_activity(now, window=None):
    """Order activity that counts towards tiers at ``now``.

    Placed within the window, not cancelled, and confirmed: by a confirm status,
    or (with a return window set, 0 days included) by the window having passed.
    """
    confirmed = Q(confirmed_at__isnull=False)
    after = loyalty_settings.CONFIRM_AFTER_DAYS
    if after is not None:
        confirmed |= Q(placed_at__lte=now - timedelta(days=after))
    return OrderActivity.objects.filter(
        confirmed, _placed_within("placed_at", now, window), cancelled_at__isnull=True
    )


def counted_points(now, window=None):
    """Earned lots whose points count on the ``points`` basis at ``now``."""
    return Lot.objects.filter(
        _placed_within("created_at", now, window),
        source=Lot.Source.EARN,
        confirmed_at__isnull=False,
    )


def _of_members(members):
    """Activity (or lots) of ``members``: a ``Q`` on ``member_id`` as it is, or a
    member queryset. A range of ids as a ``Q`` lets the database read just that
    range of the activity index, where ``member__in=<queryset>`` may scan it all."""
    if isinstance(members, Q):
        return members
    return Q(member__in=members)


def member_id_range(start_id=None, end_id=None):
    """``Q`` on ``member_id`` for the ids in [start_id, end_id)."""
    condition = Q()
    if start_id is not None:
        condition &= Q(member_id__gte=start_id)
    if end_id is not None:
        condition &= Q(member_id__lt=end_id)
    return condition


def qualifying_values(members, *, now, window=None):
    """{member id: qualifying value} for members, in one query.

    ``members``: a member queryset, or a ``Q`` on ``member_id`` (see
    :func:`member_id_range`).

    Over the qualifying window ending ``now``, or ``window`` (start, end). Members
    with no counted activity are absent (their value is 0).
    """
    rows = _value_rows(members, now=now, window=window).values_list(
        "member_id", "value"
    )
    return {member_id: _as_value(value) for member_id, value in rows}


def _as_value(raw):
    """A summed value as the database returns it, as a Decimal of the basis."""
    places = CENT if loyalty_settings.TIER_BASIS == "spend" else Decimal(1)
    if not isinstance(raw, Decimal):  # SQLite's floats and integers
        raw = Decimal(str(raw or 0))
    return raw.quantize(places)


def _value_rows(members, *, now, window=None):
    """The (member_id, value) aggregate query behind :func:`qualifying_values`."""
    basis = loyalty_settings.TIER_BASIS
    if basis == "points":
        rows = (
            counted_points(now, window)
            .filter(_of_members(members))
            .values("member_id")
            .order_by()
            .annotate(value=Sum(F("points") - F("reversed")))
        )
    elif basis == "orders":
        rows = (
            counted_activity(now, window)
            # Not refunded in full; an order points paid for entirely counts too.
            .filter(Q(spend__gt=F("refunded")) | Q(spend=0), _of_members(members))
            .values("member_id")
            .order_by()
            .annotate(value=Count("id"))
        )
    else:
        rows = (
            counted_activity(now, window)
            .filter(_of_members(members))
            .values("member_id")
            .order_by()
            .annotate(value=Sum(F("spend") - F("refunded")))
        )
    return rows


def standing_values(members, *, now):
    """{member id: the value that keeps or reaches a tier} at ``now``.

    Rolling window: the qualifying value. Calendar year: a tier reached in a year
    is kept through the next, so the better of this year's value and last year's.
    """
    values = qualifying_values(members, now=now)
    if loyalty_settings.TIER_WINDOW != "calendar_year":
        return values
    start = rules.tier_window_start(now)
    last_year = (start.replace(year=start.year - 1), start)
    for member_id, value in qualifying_values(
        members, now=now, window=last_year
    ).items():
        values[member_id] = max(value, values.get(member_id, ZERO))
    return values


def qualifying_value(member, *, now=None):
    now = now or timezone.now()
    return qualifying_values(Q(member_id=member.pk), now=now).get(member.pk, ZERO)


def all_tiers():
    return list(Tier.objects.select_related("group").order_by("rank"))


def tier_for(value, tiers):
    """The highest of ``tiers`` (ranked ascending) whose threshold ``value`` reaches."""
    reached = None
    for tier in tiers:
        if value >= tier.threshold:
            reached = tier
    return reached


def rank_of(tier):
    return -1 if tier is None else tier.rank


def entry_tier(tiers=None):
    """The tier every member starts in: the lowest, if it asks for nothing."""
    tiers = all_tiers() if tiers is None else tiers
    if tiers and tiers[0].threshold <= 0:
        return tiers[0]
    return None


@dataclass(frozen=True)
class Progress:
    """Where a member stands: their tier, the next one and what it takes."""

    tier: Tier | None
    value: Decimal
    next_tier: Tier | None
    needed: Decimal
    basis: str
    window_start: object
    window_end: object  # the calendar year's end; None for a rolling window


def progress(member, *, now=None):
    now = now or timezone.now()
    tiers = all_tiers()
    value = qualifying_value(member, now=now)
    current = member.tier or entry_tier(tiers)
    higher = [tier for tier in tiers if tier.rank > rank_of(current)]
    next_tier = higher[0] if higher else None
    needed = max(next_tier.threshold - value, ZERO) if next_tier else ZERO
    window_end = None
    if loyalty_settings.TIER_WINDOW == "calendar_year":
        start = rules.tier_window_start(now)
        window_end = start.replace(year=start.year + 1) - timedelta(microseconds=1)
    return Progress(
        tier=current,
        value=value,
        next_tier=next_tier,
        needed=needed,
        basis=loyalty_settings.TIER_BASIS,
        window_start=rules.tier_window_start(now),
        window_end=window_end,
    )


# Changing a tier -------------------------------------------------------------------


def _history_row(member, to_tier, *, kind, now, value=ZERO, reason="", actor=SYSTEM):
    """The (unsaved) history row of the member moving from their tier to ``to_tier``.

    ``member``: a ``Member``, or a row with its ``pk``, ``tier_id`` and
    ``tier_protected_until`` (the review's :class:`_Standing`)."""
    return TierChange(
        member_id=member.pk,
        from_tier_id=member.tier_id,
        to_tier=to_tier,
        kind=kind,
        qualifying_value=value,
        reason=reason[:255],
        actor_id=actor.id,
        actor_name=actor.name[:255],
        protected_until=member.tier_protected_until,
        created_at=now,
    )


def _change(member, to_tier, **history):
    """Move a locked member to ``to_tier`` and record it; None if already there."""
    if member.tier_id == (to_tier.pk if to_tier else None):
        return None
    change = _history_row(member, to_tier, **history)
    member.tier = to_tier
    member.tier_since = change.created_at
    member.tier_grace_until = None
    return change


def notify_tier_changes(changes, tiers, gifts=None):
    """Tell the members who moved up or down (one task for each direction);
    ``gifts`` ({member id: [coupon id]}): the tier coupons the move up brought,
    named in the same message rather than one message each."""
    from ..notifications import notify

    gifts = gifts or {}
    moves = {"tier_up": {}, "tier_down": {}}
    for change in changes:
        old = tiers.get(change.from_tier_id)
        new = change.to_tier
        if new is None:
            continue  # taken out of the tiers by staff: nothing to announce
        event = "tier_up" if rank_of(new) > rank_of(old) else "tier_down"
        moves[event][change.member_id] = {
            "old_tier": old.name if old else "",
            "new_tier": new.name if new else "",
        }
        if event == "tier_up" and gifts.get(change.member_id):
            moves[event][change.member_id]["coupon_ids"] = gifts[change.member_id]
    for event, extra in moves.items():
        notify(event, list(extra), extra)


def tier_up_names_gifts():
    """Whether every tier-up message the owner has (each language's) still lists
    the gift coupons (its text uses ``coupons``, as the plugin's does)."""
    from oscar.core.loading import get_model

    CommunicationEventType = get_model("communication", "CommunicationEventType")
    return not (
        CommunicationEventType.objects.filter(code__startswith="LOYALTY_TIER_UP")
        .exclude(email_body_template__contains="coupons")
        .exists()
    )


def tell_gifts_apart(gifts):
    """A "coupon issued" message for each gift ({member id: [coupon id]}), for a
    shop whose own tier-up text does not list them."""
    from ..notifications import notify

    for index in range(max(len(ids) for ids in gifts.values())):
        extra = {
            member_id: {"coupon_id": ids[index]}
            for member_id, ids in gifts.items()
            if len(ids) > index
        }
        notify("coupon_issued", list(extra), extra)


def announce_changes(changes, moved, *, members=None):
    """Mirror the changes into the groups, then announce them once committed.

    ``changes``: the saved :class:`TierChange` rows; ``moved``: their members, as
    rows with ``pk`` and ``user_id`` already saved in their new tier. The
    ``tier_changed`` receivers get ``Member`` instances: ``members`` ({pk: Member})
    when the caller has them, else read in one query after the commit, and only
    when a receiver is connected (a review of a million members builds none).
    """
    if not changes:
        return
    sync_member_groups(moved)
    tiers = {tier.pk: tier for tier in Tier.objects.all()}

    upgraded = [
        change.member_id
        for change in changes
        if rank_of(change.to_tier) > rank_of(tiers.get(change.from_tier_id))
    ]

    def announce():
        gifts = {}
        if upgraded:
            try:
                with transaction.atomic():
                    from . import coupons

                    # Announced with the move up: one message, not two.
                    gifts = coupons.issue_tier_coupons(upgraded, event=None)
            except Exception:
                logger.exception("Could not issue tier coupons to %s", upgraded)
        try:
            notify_tier_changes(changes, tiers, gifts)
            if gifts and not tier_up_names_gifts():
                tell_gifts_apart(gifts)
        except Exception:
            logger.exception("Could not queue the tier messages")
        if not tier_changed.has_listeners(Member):
            return
        found = members
        if found is None:
            found = Member.objects.in_bulk([change.member_id for change in changes])
        for change in changes:
            member = found.get(change.member_id)
            if member is None:  # erased since
                continue
            responses = tier_changed.send_robust(
                sender=Member,
                member=member,
                old_tier=tiers.get(change.from_tier_id),
                new_tier=change.to_tier,
                change=change,
            )
            for receiver, response in responses:
                if isinstance(response, Exception):
                    logger.error(
                        "A tier_changed receiver (%r) failed for member %s",
                        receiver,
                        member.pk,
                        exc_info=response,
                    )

    # Robust: a shop's failing listener never turns a committed change (or the
    # checkout that made it) into an error.
    transaction.on_commit(announce, robust=True)


@transaction.atomic
def upgrade(member, *, now=None):
    """Move the member up if their confirmed activity reached a higher tier.

    Never moves anyone down (that waits for the review). Returns the
    :class:`TierChange`, or None.
    """
    now = now or timezone.now()
    member = lock_member(member.pk)
    tiers = all_tiers()
    value = standing_values(Q(member_id=member.pk), now=now).get(member.pk, ZERO)
    target = tier_for(value, tiers)
    if rank_of(target) <= rank_of(member.tier):
        if member.tier_grace_until and rank_of(target) == rank_of(member.tier):
            member.tier_grace_until = None  # qualifies again: no downgrade due
            member.save(update_fields=["tier_grace_until"])
        return None
    change = _change(member, target, kind=TierChange.Kind.UPGRADE, now=now, value=value)
    member.save(update_fields=["tier", "tier_since", "tier_grace_until"])
    change.save()
    announce_changes([change], [member], members={member.pk: member})
    return change


@transaction.atomic
def set_tier(*, member, tier, reason, actor, protect_until=None, now=None):
    """Staff put a member in ``tier`` (None: no tier), with a required reason.

    ``protect_until`` keeps the member from being moved down by reviews until
    then. Returns the :class:`TierChange` (also when only the protection changed).
    """
    reason = (reason or "").strip()
    if not reason:
        raise TierReasonRequired()
    now = now or timezone.now()
    if protect_until is not None and protect_until <= now:
        raise TierProtectionInPast()
    member = lock_member(member.pk)
    member.tier_protected_until = protect_until
    history = {
        "kind": TierChange.Kind.STAFF,
        "now": now,
        "value": qualifying_value(member, now=now),
        "reason": reason,
        "actor": actor,
    }
    change = _change(member, tier, **history)
    if change is None:  # same tier: the protection (or its removal) is the change
        if protect_until is not None:
            member.tier_grace_until = None  # staff keep them in it: no downgrade due
        change = _history_row(member, tier, **history)
        member.save(update_fields=["tier_protected_until", "tier_grace_until"])
        change.save()
        return change
    member.save(
        update_fields=["tier", "tier_since", "tier_grace_until", "tier_protected_until"]
    )
    change.save()
    announce_changes([change], [member], members={member.pk: member})
    return change


# The periodic review ---------------------------------------------------------------


@dataclass
class ReviewResult:
    upgraded: int = 0
    downgraded: int = 0
    grace_started: int = 0
    kept_protected: int = 0

    def __add__(self, other):
        return ReviewResult(
            *(a + b for a, b in zip(self.as_tuple(), other.as_tuple(), strict=True))
        )

    def as_tuple(self):
        return (self.upgraded, self.downgraded, self.grace_started, self.kept_protected)


def decide(member, target, *, now, grace):
    """What the review does to one member: ("up" | "down" | "grace" | "keep" |
    "protected" | "clear", tier). Pure, so it can be tested at every boundary.
    """
    current = rank_of(member.tier)
    wanted = rank_of(target)
    if wanted > current:
        return "up", target
    if wanted == current:
        return ("clear" if member.tier_grace_until else "keep"), member.tier
    if member.tier_protected_until and member.tier_protected_until > now:
        return "protected", member.tier
    if member.tier_grace_until is None and grace:
        return "grace", member.tier
    if member.tier_grace_until is not None and member.tier_grace_until > now:
        return "keep", member.tier
    return "down", target


#: Members locked and written per transaction by the review's second pass.
LOCK_BATCH = 5_000
#: What the review writes for; "keep" and "protected" need no write.
WRITING_ACTIONS = ("up", "down", "grace", "clear")


@dataclass
class _Standing:
    """A member's row as the review's first pass reads it (no model instance)."""

    pk: int
    tier: Tier | None
    tier_protected_until: object
    tier_grace_until: object

    @property
    def tier_id(self):
        return self.tier.pk if self.tier is not None else None


@dataclass
class _Moved:
    """A member the review moved: what the tier groups need of them."""

    pk: int
    user_id: int


def review(*, now=None, start_id=None, end_id=None):
    """Review every member with an id in [start_id, end_id): set-based.

    A first pass, one query without locking (:func:`_maybe_moving`), brings back
    only the members whose standing reaches another tier or who have a grace
    running, and :func:`decide` picks those the review must write for (up, down,
    grace starts or ends). Only those are then locked (in id order, up to
    :data:`LOCK_BATCH` per transaction), their values read again under the lock
    and decided again, and written with a few statements and their history. A
    member whose standing changes between the passes is decided on what holds
    under the lock.
    Idempotent: a second run at the same ``now`` finds nothing to change.
    """
    now = now or timezone.now()
    members = Member.objects.all()
    if start_id is not None:
        members = members.filter(pk__gte=start_id)
    if end_id is not None:
        members = members.filter(pk__lt=end_id)
    tiers = all_tiers()
    by_pk = {tier.pk: tier for tier in tiers}
    grace = timedelta(days=loyalty_settings.TIER_GRACE_DAYS)
    result = ReviewResult()
    candidates = []
    for pk, value, tier_id, protected_until, grace_until in _maybe_moving(
        tiers, now=now, start_id=start_id, end_id=end_id
    ):
        standing = _Standing(pk, by_pk.get(tier_id), protected_until, grace_until)
        target = tier_for(_as_value(value), tiers)
        action, _ = decide(standing, target, now=now, grace=grace)
        if action in WRITING_ACTIONS:
            candidates.append(pk)
        elif action == "protected":
            result.kept_protected += 1
    for start in range(0, len(candidates), LOCK_BATCH):
        batch = candidates[start : start + LOCK_BATCH]
        result += _review_locked(batch, tiers, now=now, grace=grace)
    return result


def _maybe_moving(tiers, *, now, start_id=None, end_id=None):
    """Rows (id, standing value, tier id, protected until, grace until) of the
    members in the id range whose standing reaches another tier than theirs, or
    who have a grace running: a superset of those the review acts on, which
    :func:`decide` then sorts out. One query: the members joined to the same
    aggregate :func:`standing_values` reads (built by the ORM), so the database
    returns only these few rows rather than every member and value.
    """
    from django.db import connection

    quote = connection.ops.quote_name
    condition = member_id_range(start_id, end_id)
    params = []
    joins = []
    values = []
    windows = [None]
    if loyalty_settings.TIER_WINDOW == "calendar_year":
        start = rules.tier_window_start(now)
        windows.append((start.replace(year=start.year - 1), start))
    for index, window in enumerate(windows):
        sql, sql_params = _value_rows(
            condition, now=now, window=window
        ).query.sql_with_params()
        joins.append(
            f"LEFT JOIN ({sql}) AS v{index} ON v{index}.{quote('member_id')} = m.id"
        )
        params.extend(sql_params)
        values.append(f"COALESCE(v{index}.{quote('value')}, 0)")
    standing = values[0]
    if len(values) == 2:
        standing = (
            f"CASE WHEN {values[1]} > {values[0]} THEN {values[1]} ELSE {values[0]} END"
        )
    # Thresholds and ranks are numbers from the tier rows, written as literals so
    # that both databases compare numbers with numbers.
    cases = " ".join(
        f"WHEN {standing} >= {Decimal(tier.threshold):f} THEN {int(tier.rank)}"
        for tier in reversed(tiers)
    )
    wanted = f"CASE {cases} ELSE -1 END" if tiers else "-1"
    where = [
        "(" + wanted + " <> COALESCE(t.rank, -1) OR m.tier_grace_until IS NOT NULL)"
    ]
    if start_id is not None:
        where.append("m.id >= %s")
        params.append(start_id)
    if end_id is not None:
        where.append("m.id < %s")
        params.append(end_id)
    member_table = quote(Member._meta.db_table)
    tier_table = quote(Tier._meta.db_table)
    query = (
        f"SELECT m.id, {standing}, m.tier_id, m.tier_protected_until, "
        f"m.tier_grace_until FROM {member_table} AS m "
        f"LEFT JOIN {tier_table} AS t ON t.id = m.tier_id "
        + " ".join(joins)
        + " WHERE "
        + " AND ".join(where)
        + " ORDER BY m.id"
    )
    datetime_field = Member._meta.get_field("tier_grace_until")
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        rows = cursor.fetchall()
    converters = connection.ops.get_db_converters(datetime_field.get_col("m"))
    converted = []
    for pk, value, tier_id, protected_until, grace_until in rows:
        for converter in converters:
            protected_until = converter(protected_until, None, connection)
            grace_until = converter(grace_until, None, connection)
        converted.append((pk, value, tier_id, protected_until, grace_until))
    return converted


def upgrade_members(member_ids, *, now=None):
    """:func:`upgrade` for many members at once (after a set-based confirmation).

    Moves up those whose confirmed activity now reaches a higher tier and ends the
    grace of those who qualify again; never moves anyone down. A fixed number of
    statements per :data:`LOCK_BATCH` members. Returns a :class:`ReviewResult`.
    """
    now = now or timezone.now()
    tiers = all_tiers()
    ids = sorted(set(member_ids))
    result = ReviewResult()
    if not tiers:
        return result
    for start in range(0, len(ids), LOCK_BATCH):
        result += _review_locked(
            ids[start : start + LOCK_BATCH], tiers, now=now, grace=None, only_up=True
        )
    return result


@transaction.atomic
def _review_locked(member_ids, tiers, *, now, grace, only_up=False):
    """Decide and write the review for ``member_ids``, locked and read afresh.

    ``only_up``: upgrades (and the end of a grace) only, as on confirmation.
    """
    by_pk = {tier.pk: tier for tier in tiers}
    # Rows, not model instances: a review locks thousands of members at a time.
    locked = list(
        Member.objects.filter(pk__in=member_ids)
        .select_for_update()
        .order_by("pk")
        .values_list(
            "pk", "user_id", "tier_id", "tier_protected_until", "tier_grace_until"
        )
    )
    values = standing_values(Q(member_id__in=member_ids), now=now)
    kind = TierChange.Kind.UPGRADE if only_up else TierChange.Kind.REVIEW
    result = ReviewResult()
    changes, moved, graced, cleared = [], [], [], []
    for pk, user_id, tier_id, protected_until, grace_until in locked:
        standing = _Standing(pk, by_pk.get(tier_id), protected_until, grace_until)
        value = values.get(pk, ZERO)
        action, tier = decide(standing, tier_for(value, tiers), now=now, grace=grace)
        if only_up and action not in ("up", "clear"):
            continue
        if action in ("up", "down"):
            changes.append(
                _history_row(standing, tier, kind=kind, now=now, value=value)
            )
            moved.append(_Moved(pk, user_id))
            if action == "up":
                result.upgraded += 1
            else:
                result.downgraded += 1
        elif action == "grace":
            graced.append(pk)
            result.grace_started += 1
        elif action == "clear":
            cleared.append(pk)
        elif action == "protected":
            result.kept_protected += 1
    # One UPDATE per new tier, one for graces started, one for graces ended: every
    # change of a review shares its moment.
    by_target = {}
    for change in changes:
        by_target.setdefault(change.to_tier_id, []).append(change.member_id)
    for tier_id, ids in by_target.items():
        Member.objects.filter(pk__in=ids).update(
            tier_id=tier_id, tier_since=now, tier_grace_until=None
        )
    if changes:
        TierChange.objects.bulk_create(changes, batch_size=LOCK_BATCH)
    if graced:
        Member.objects.filter(pk__in=graced).update(tier_grace_until=now + grace)
    if cleared:
        Member.objects.filter(pk__in=cleared).update(tier_grace_until=None)
    announce_changes(changes, moved)
    return result


# Tier groups -----------------------------------------------------------------------


def ensure_group(tier):
    """The tier's group, created (or renamed after its code) as needed."""
    if tier.group_id is not None:
        group = tier.group
        if group.name != tier.group_name:
            group.name = tier.group_name
            group.save(update_fields=["name"])
        return group
    group, _ = Group.objects.get_or_create(name=tier.group_name)
    Tier.objects.filter(pk=tier.pk).update(group=group)
    tier.group = group
    return group


def _delete_memberships(Membership, user_ids, group_ids):
    """One DELETE of the users' memberships of the groups (Django's delete() would
    first select them, then delete in many statements)."""
    if not user_ids or not group_ids:
        return
    from django.db import connection

    quote = connection.ops.quote_name
    meta = Membership._meta
    user_column = meta.get_field(get_user_model()._meta.model_name).column
    group_column = meta.get_field("group").column
    with connection.cursor() as cursor:
        for start in range(0, len(user_ids), 10_000):
            users = user_ids[start : start + 10_000]
            cursor.execute(
                f"DELETE FROM {quote(meta.db_table)} "
                f"WHERE {quote(user_column)} IN ({', '.join(['%s'] * len(users))}) "
                f"AND {quote(group_column)} IN ({', '.join(['%s'] * len(group_ids))})",
                [*users, *group_ids],
            )


@transaction.atomic
def resync_all_groups():
    """Every member's tier groups from their tier, in two statements.

    For when the tiers themselves change (one added, a rank moved): memberships of
    the tier groups are replaced from ``Member.tier``, in one transaction (readers
    see the old memberships until it commits).
    """
    tiers = all_tiers()
    for tier in tiers:
        ensure_group(tier)
    Membership = get_user_model().groups.through
    Membership.objects.filter(group_id__in=[tier.group_id for tier in tiers]).delete()
    if tiers:
        _insert_memberships()


def sync_member_groups(members):
    """Put each member's user in the groups of their tier and every tier below it.

    ``members``: rows with ``pk`` and ``user_id``, already saved in their tier.
    Their tier-group memberships are replaced, in SQL: two statements per 10,000
    members, whatever their tiers.
    """
    tiers = all_tiers()
    group_ids = [ensure_group(tier).pk for tier in tiers]
    Membership = get_user_model().groups.through
    for start in range(0, len(members), 10_000):
        batch = members[start : start + 10_000]
        _delete_memberships(Membership, [m.user_id for m in batch], group_ids)
        if tiers:
            _insert_memberships([m.pk for m in batch])


def _insert_memberships(member_ids=None):
    """Add each member's user to the groups of their tier and the tiers below.

    Every member, or those of ``member_ids``. One INSERT … SELECT; a membership
    that exists already (added meanwhile by a sign-up or an upgrade) is kept.
    """
    from django.db import connection

    User = get_user_model()
    membership = User.groups.through._meta
    quote = connection.ops.quote_name
    user_column = membership.get_field(User._meta.model_name).column
    group_column = membership.get_field("group").column
    where, params = "true", []
    if member_ids is not None:
        where = f"m.id IN ({', '.join(['%s'] * len(member_ids))})"
        params = list(member_ids)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(membership.db_table)} "
            f"({quote(user_column)}, {quote(group_column)}) "
            f"SELECT m.user_id, lower_tier.group_id "
            f"FROM {quote(Member._meta.db_table)} AS m "
            f"JOIN {quote(Tier._meta.db_table)} AS t ON t.id = m.tier_id "
            f"JOIN {quote(Tier._meta.db_table)} AS lower_tier "
            f"ON lower_tier.rank <= t.rank AND lower_tier.group_id IS NOT NULL "
            f"WHERE {where} ON CONFLICT DO NOTHING",
            params,
        )


# Order activity --------------------------------------------------------------------


def order_spend(order_lines):
    """What an order's lines count as spend: their prices after discounts (points
    included: what points paid for is a discount), on the earning tax basis."""
    includes_tax = loyalty_settings.EARN_INCLUDES_TAX
    return sum(
        (
            line.line_price_incl_tax if includes_tax else line.line_price_excl_tax
            for line in order_lines
        ),
        ZERO,
    )


def record_order(*, member_id, order_number, placed_at, spend):
    """Write the order's activity once (a second call for the order does nothing)."""
    OrderActivity.objects.bulk_create(
        [
            OrderActivity(
                member_id=member_id,
                order_number=order_number,
                placed_at=placed_at,
                spend=max(Decimal(spend), ZERO),
            )
        ],
        ignore_conflicts=True,
    )


def _lock_activity_member(order_number):
    """The activity's member locked first (the ledger's lock order); its id or None."""
    member_id = (
        OrderActivity.objects.filter(order_number=order_number)
        .values_list("member_id", flat=True)
        .first()
    )
    if member_id is not None:
        lock_member(member_id)
    return member_id


@transaction.atomic
def confirm_order(*, order_number, now=None):
    """The order's activity counts from now on; the member may move up a tier."""
    now = now or timezone.now()
    member_id = _lock_activity_member(order_number)
    if member_id is None:
        return None
    OrderActivity.objects.filter(
        order_number=order_number, confirmed_at__isnull=True, cancelled_at__isnull=True
    ).update(confirmed_at=now)
    return upgrade(Member(pk=member_id), now=now)


@transaction.atomic
def cancel_order(*, order_number, now=None):
    """A cancelled order no longer counts (any downgrade waits for the review)."""
    if _lock_activity_member(order_number) is None:
        return
    OrderActivity.objects.filter(
        order_number=order_number, cancelled_at__isnull=True
    ).update(cancelled_at=now or timezone.now())


def refresh_refunds(order, refund_codes):
    """Recompute what the order's refunds took off its spend, from Oscar's events.

    Recomputed rather than added to, so a refund event seen twice counts once.
    """
    lines = list(order.lines.all())
    if not lines:
        return
    PaymentEventQuantity = lines[0].payment_event_quantities.model
    refunded_items = dict(
        PaymentEventQuantity.objects.filter(
            line__order=order, event__event_type__code__in=refund_codes
        )
        .values("line_id")
        .order_by()
        .annotate(total=Sum("quantity"))
        .values_list("line_id", "total")
    )
    includes_tax = loyalty_settings.EARN_INCLUDES_TAX
    refunded = ZERO
    for line in lines:
        items = min(refunded_items.get(line.pk, 0), line.quantity)
        if items and line.quantity:
            price = (
                line.line_price_incl_tax if includes_tax else line.line_price_excl_tax
            )
            refunded += (price * items / line.quantity).quantize(Decimal("0.01"))
    activity = OrderActivity.objects.filter(order_number=order.number).first()
    if activity is not None:
        OrderActivity.objects.filter(pk=activity.pk).update(
            refunded=min(refunded, activity.spend)
        )
