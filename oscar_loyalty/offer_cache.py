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
"""

from django.core.cache import cache
from django.db.models.signals import m2m_changed, post_delete
from django.dispatch import receiver
from oscar.core.loading import get_model

ConditionalOffer = get_model("offer", "ConditionalOffer")
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


def prime(offer, basket):
    """Give ``offer`` (one of the plugin's) an empty prefetched ``combinations``
    when it has none, once per offer object."""
    prefetched = offer.__dict__.setdefault("_prefetched_objects_cache", {})
    if "combinations" in prefetched or offer.pk is None:
        return
    if offer.pk in _combined(basket):
        return
    prefetched["combinations"] = ConditionalOffer.objects.none()


@receiver(m2m_changed, sender=Combinations, dispatch_uid="oscar_loyalty.combinations")
@receiver(post_delete, sender=ConditionalOffer, dispatch_uid="oscar_loyalty.offer_gone")
def forget_combinations(sender, **kwargs):
    cache.delete(CACHE_KEY)
