"""Switching the plugin off in a running shop, and members with a long history.

Used by the checkout benchmark and by ``tests/test_query_budget.py``; import it
after Django is set up.

What the plugin does during a checkout, and so what :func:`plugin_disabled` takes
away, is of two kinds:

* signal receivers: ``order_placed`` awards the order's points, and whatever else
  the plugin connects (order status changes, refunds, registrations, basket
  signals). Every receiver whose ``dispatch_uid`` starts with ``oscar_loyalty.``
  or whose function lives in ``oscar_loyalty`` is disconnected, found by looking
  at every signal of every loaded module, so a receiver added later is covered
  without changing this file;
* offers: Oscar applies every open SITE offer to the basket on each request, and
  the programme's offer (``loyalty-points-redemption``, from migration 0003) asks
  the database whether points were applied to the basket. Every open offer whose
  condition or benefit is one of the plugin's proxy classes is suspended, so
  Oscar's ``ConditionalOffer.active`` no longer returns it.

With ``templates=True`` (the basket benchmark) a third: the plugin's template
overrides (the basket's points and coupons panels…) are hidden, so Oscar renders
its own pages, through a second template engine like the shop's without the
plugin's directory, swapped in for the block.

All are put back on leaving the block, exactly as they were.
"""

import sys
import weakref
from contextlib import contextmanager
from datetime import timedelta

from django.db.models import Q
from django.dispatch import Signal
from django.utils import timezone
from oscar.core.loading import get_model

from oscar_loyalty.models import Entry, Lot, Member, Posting

ConditionalOffer = get_model("offer", "ConditionalOffer")

PLUGIN = "oscar_loyalty"
LOYALTY_TABLE = "oscar_loyalty_"


def all_signals():
    """Every :class:`~django.dispatch.Signal` defined at the top of a loaded module."""
    found = {}
    for module in list(sys.modules.values()):
        namespace = getattr(module, "__dict__", None) or {}
        for value in list(namespace.values()):
            if isinstance(value, Signal):
                found[id(value)] = value
    return list(found.values())


def _is_plugin_receiver(entry):
    lookup_key, receiver = entry[0], entry[1]
    uid = lookup_key[0]
    if isinstance(uid, str) and uid.startswith(f"{PLUGIN}."):
        return True
    if isinstance(receiver, weakref.ReferenceType):
        receiver = receiver()
    module = getattr(receiver, "__module__", "") or ""
    return module == PLUGIN or module.startswith(f"{PLUGIN}.")


def plugin_receivers():
    """(signal, [receiver entries]) of the plugin, for every signal that has some."""
    found = []
    for signal in all_signals():
        with signal.lock:
            entries = [
                entry for entry in signal.receivers if _is_plugin_receiver(entry)
            ]
        if entries:
            found.append((signal, entries))
    return found


def receiver_names(found):
    names = []
    for _signal, entries in found:
        for entry in entries:
            uid = entry[0][0]
            names.append(uid if isinstance(uid, str) else repr(entry[1]))
    return sorted(names)


def plugin_offers():
    """The open offers whose condition or benefit is one of the plugin's classes."""
    return ConditionalOffer.objects.filter(
        Q(condition__proxy_class__startswith=f"{PLUGIN}.")
        | Q(benefit__proxy_class__startswith=f"{PLUGIN}."),
        status=ConditionalOffer.OPEN,
    )


_ENGINES_WITHOUT_PLUGIN = {}


def _engine_without_plugin(alias):
    """The template engine ``alias`` as the shop would have it without the plugin:
    the same options and directories, the apps' template directories in
    ``INSTALLED_APPS`` order except the plugin's, both behind a cached loader."""
    if alias not in _ENGINES_WITHOUT_PLUGIN:
        from pathlib import Path

        from django.apps import apps
        from django.template import engines

        engine = engines[alias]
        settings_entry = next(
            entry for entry in engines.templates.values() if entry["NAME"] == alias
        )
        app_dirs = [
            str(Path(config.path) / "templates")
            for config in apps.get_app_configs()
            if config.name != PLUGIN and (Path(config.path) / "templates").is_dir()
        ]
        params = {
            **settings_entry,
            "DIRS": [*settings_entry["DIRS"], *app_dirs],
            "APP_DIRS": False,
            "OPTIONS": {
                **settings_entry["OPTIONS"],
                "loaders": [
                    (
                        "django.template.loaders.cached.Loader",
                        ["django.template.loaders.filesystem.Loader"],
                    )
                ],
            },
        }
        params.pop("BACKEND", None)
        _ENGINES_WITHOUT_PLUGIN[alias] = type(engine)(params)
    return _ENGINES_WITHOUT_PLUGIN[alias]


@contextmanager
def _templates_without_plugin():
    from django.template import engines

    saved = dict(engines._engines)
    try:
        for alias in list(engines):
            engines._engines[alias] = _engine_without_plugin(alias)
        yield
    finally:
        engines._engines.clear()
        engines._engines.update(saved)


@contextmanager
def plugin_disabled(*, templates=False):
    """Within the block, the checkout runs as if the plugin were not installed.

    Yields the names of the receivers taken out. Refuses to run (``RuntimeError``)
    if the ``order_placed`` receiver is not among them: a benchmark of "plugin off"
    that left it connected would measure nothing.
    """
    found = plugin_receivers()
    names = receiver_names(found)
    if f"{PLUGIN}.award_order" not in names:
        raise RuntimeError(
            f"the plugin's order_placed receiver is not connected; found {names}"
        )
    offer_ids = list(plugin_offers().values_list("pk", flat=True))
    saved = []
    try:
        for signal, entries in found:
            with signal.lock:
                saved.append((signal, list(signal.receivers)))
                signal.receivers = [e for e in signal.receivers if e not in entries]
                signal.sender_receivers_cache.clear()
        ConditionalOffer.objects.filter(pk__in=offer_ids).update(
            status=ConditionalOffer.SUSPENDED
        )
        if templates:
            with _templates_without_plugin():
                yield names
        else:
            yield names
    finally:
        for signal, receivers in saved:
            with signal.lock:
                signal.receivers = receivers
                signal.sender_receivers_cache.clear()
        ConditionalOffer.objects.filter(pk__in=offer_ids).update(
            status=ConditionalOffer.OPEN
        )


def loyalty_queries(captured):
    """The captured queries (``CaptureQueriesContext``) that touch a plugin table."""
    return [query for query in captured if LOYALTY_TABLE in query["sql"]]


def build_history(member, entries, *, now=None, batch_size=2_000):
    """Give ``member`` a past of exactly ``entries`` ledger entries, in bulk.

    As the services would have written it: orders earned pending lots (an ``earn``
    posting and entry each), later confirmed (a ``confirm`` posting whose entry
    moves the points from pending to available), and a fifth of the entries are
    redemptions that each used up one lot. Fewer than three entries: that many
    lots added by staff (an ``adjust`` posting and entry each). The cached balances
    are set to the sums, so ``find_drift`` finds nothing. Returns the member.
    """
    now = now or timezone.now()
    tag = f"history:{member.number}"
    if entries < 3:
        earned, redeemed = 0, 0
    else:
        redeemed = entries // 5
        earned = (entries - redeemed) // 2
    adjusted = entries - redeemed - 2 * earned

    def lot(index, source):
        created = now - timedelta(hours=index + 1)
        return Lot(
            member=member,
            source=source,
            status=Lot.Status.ACTIVE,
            points=100 + index % 7 * 25,
            remaining=100 + index % 7 * 25,
            created_at=created,
            confirmed_at=created,
            expires_at=created + timedelta(days=365),
            order_number=f"{tag}:{index}" if source == Lot.Source.EARN else "",
        )

    earned_lots = Lot.objects.bulk_create(
        [lot(i, Lot.Source.EARN) for i in range(earned)], batch_size=batch_size
    )
    adjusted_lots = Lot.objects.bulk_create(
        [lot(earned + i, Lot.Source.ADJUST) for i in range(adjusted)],
        batch_size=batch_size,
    )
    # Redemptions use up the lots that expire first, as the FIFO walk would.
    spent = sorted(earned_lots, key=lambda lot: (lot.expires_at, lot.pk))[:redeemed]

    postings, changes = [], []

    def post(kind, key, lot, created, **change):
        postings.append(
            Posting(
                key=key,
                kind=kind,
                member=member,
                created_at=created,
                order_number=lot.order_number,
            )
        )
        changes.append((lot, change))

    for lot_ in earned_lots:
        post(
            Posting.Kind.EARN,
            f"earn:{lot_.order_number}:1",
            lot_,
            lot_.created_at,
            pending_change=lot_.points,
        )
        post(
            Posting.Kind.CONFIRM,
            f"confirm:{tag}:{lot_.pk}",
            lot_,
            lot_.created_at,
            available_change=lot_.points,
            pending_change=-lot_.points,
        )
    for lot_ in adjusted_lots:
        post(
            Posting.Kind.ADJUST,
            f"adjust:{tag}:{lot_.pk}",
            lot_,
            lot_.created_at,
            available_change=lot_.points,
        )
    for lot_ in spent:
        post(
            Posting.Kind.REDEEM,
            f"redeem:{tag}:{lot_.pk}",
            lot_,
            lot_.created_at + timedelta(minutes=30),
            available_change=-lot_.points,
        )
    postings = Posting.objects.bulk_create(postings, batch_size=batch_size)
    Entry.objects.bulk_create(
        [
            Entry(posting=posting, member=member, lot=lot_, **change)
            for posting, (lot_, change) in zip(postings, changes, strict=True)
        ],
        batch_size=batch_size,
    )
    if spent:
        Lot.objects.filter(pk__in=[lot_.pk for lot_ in spent]).update(remaining=0)
    lots = earned_lots + adjusted_lots
    spent_ids = {lot_.pk for lot_ in spent}
    available = sum(lot_.points for lot_ in lots if lot_.pk not in spent_ids)
    Member.objects.filter(pk=member.pk).update(
        available=available,
        pending=0,
        held=0,
        lifetime_earned=sum(lot_.points for lot_ in lots),
    )
    member.refresh_from_db()
    return member
