"""Sparing Oscar's offer engine a query per basket line for the plugin's offers.

When two offers discount one line, Oscar's ``LineOfferConsumer`` asks, for each
pair and each line, ``offer.combinations.count()`` — two queries every time, a
few dozen per basket page once tier, campaign and points offers apply together.
The plugin's offers rarely have combinations: which offers have any is kept in
Django's cache (one query when it is cold; dropped whenever an offer's
combinations change or an offer is deleted, and after :data:`TIMEOUT` seconds in
any case, for caches not shared between processes), and each plugin offer
without any gets an empty prefetched ``combinations``, exactly what
``prefetch_related`` would leave, so Oscar's ``count()`` costs nothing. Offers
with combinations are left to Oscar.

Oscar also builds a new proxy of an offer's condition and benefit every time it
asks them anything (``condition.proxy()``), and a new proxy has forgotten its
range, so each question read the range again. :func:`prime` keeps one proxy of
each on the offer, with its range read once per basket (the plugin's offers
usually share one), so Oscar's next ``proxy()`` returns that same object.
"""

from django.core.cache import cache
from django.db.models.signals import m2m_changed, post_delete
from django.dispatch import receiver
from oscar.core.loading import get_model

ConditionalOffer = get_model("offer", "ConditionalOffer")
Range = get_model("offer", "Range")
Combinations = ConditionalOffer.combinations.through

CACHE_KEY = "oscar_loyalty:combined_offers"
#: Seconds a process may rely on the cached answer (a cache per process, such
#: as the default local-memory one, does not hear of another process's change).
TIMEOUT = 300


def offers_with_combinations():
    """Ids of the offers that have combinations (either side)."""
    found = cache.get(CACHE_KEY)
    if found is None:
        found = set()
        for pair in Combinations.objects.values_list(
            "from_conditionaloffer_id", "to_conditionaloffer_id"
        ):
            found.update(pair)
        cache.set(CACHE_KEY, found, TIMEOUT)
    return found


def _combined(basket):
    cached = getattr(basket, "_loyalty_combined_offers", None)
    if cached is None:
        cached = basket._loyalty_combined_offers = offers_with_combinations()
    return cached


def _no_combinations():
    """What ``prefetch_related("combinations")`` leaves for an offer without any:
    an evaluated, empty queryset (``count()`` and ``in`` ask no database)."""
    empty = ConditionalOffer.objects.none()
    empty._result_cache = []
    empty._prefetch_done = True
    return empty


def basket_range(basket, range_id):
    """The range ``range_id``, read once per basket (None for None)."""
    if range_id is None:
        return None
    ranges = getattr(basket, "_loyalty_ranges", None)  # may be a lazy object
    if ranges is None:
        ranges = basket._loyalty_ranges = {}
    if range_id not in ranges:
        ranges[range_id] = Range.objects.filter(pk=range_id).first()
    return ranges[range_id]


def _with_range(part, basket):
    """``part`` (a condition or benefit proxy) with its range from the basket's."""
    field = type(part)._meta.get_field("range")
    if part.range_id is not None and not field.is_cached(part):
        found = basket_range(basket, part.range_id)
        if found is not None:
            field.set_cached_value(part, found)
    return part


def prime(offer, basket, *, condition=None):
    """Spare Oscar's repeated reads for ``offer`` (one of the plugin's): an empty
    prefetched ``combinations`` when it has none, and one proxy of its condition
    (``condition``, the proxy asking, if given) and of its benefit, with their
    ranges, kept on the offer. Once per offer object."""
    state = offer.__dict__
    if state.get("_loyalty_primed") or offer.pk is None:
        if condition is not None:
            _with_range(condition, basket)
        return
    state["_loyalty_primed"] = True
    prefetched = state.setdefault("_prefetched_objects_cache", {})
    if "combinations" not in prefetched and offer.pk not in _combined(basket):
        prefetched["combinations"] = _no_combinations()
    descriptor = type(offer)
    if offer.condition_id is not None:
        proxy = condition if condition is not None else offer.condition.proxy()
        descriptor.condition.field.set_cached_value(offer, _with_range(proxy, basket))
    if offer.benefit_id is not None:
        proxy = _with_range(offer.benefit.proxy(), basket)
        descriptor.benefit.field.set_cached_value(offer, proxy)


@receiver(m2m_changed, sender=Combinations, dispatch_uid="oscar_loyalty.combinations")
@receiver(post_delete, sender=ConditionalOffer, dispatch_uid="oscar_loyalty.offer_gone")
def forget_combinations(sender, **kwargs):
    cache.delete(CACHE_KEY)
