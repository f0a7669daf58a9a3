"""Member segments in Oscar's offers: a custom condition per segment.

Each segment of :data:`~oscar_loyalty.models.SEGMENT_CHOICES` ("RFM: Champions",
"Activity: Dormant"…) has one :class:`~oscar_loyalty.models.SegmentCondition`
over all products with no minimum spend, made after every ``migrate``
(:func:`ensure_conditions`). In Oscar's offer wizard the owner picks it as the
*custom condition* of an offer ("10 % off for champions"), then any benefit.
The condition looks the basket owner's segments up once per basket (one query
on the newest scoring run); guests, members not scored (no profiling consent)
and members outside the segment never satisfy it.
"""

from .rules_lookup import basket_member

CONDITION_PATH = f"{__package__}.models.SegmentCondition"

#: {condition id: segment}; the rows never change segment once made.
_segments = {}


def ensure_conditions(using="default"):
    """One segment condition per segment: made where missing (after migrate)."""
    from oscar.core.loading import get_model

    from .models import SEGMENT_CHOICES, ConditionSegment
    from .tier_offers import _all_products_range

    Condition = get_model("offer", "Condition")
    have = set(ConditionSegment.objects.using(using).values_list("segment", flat=True))
    missing = [code for code, _label in SEGMENT_CHOICES if code not in have]
    if not missing:
        return 0
    everything = _all_products_range()
    for code in missing:
        condition = Condition.objects.using(using).create(
            proxy_class=CONDITION_PATH,
            range=everything,
            type=Condition.VALUE,
            value=0,
        )
        ConditionSegment.objects.using(using).create(condition=condition, segment=code)
    return len(missing)


def segment_of(condition_id):
    if condition_id not in _segments:
        from .models import ConditionSegment

        _segments.update(
            ConditionSegment.objects.values_list("condition_id", "segment")
        )
    return _segments.get(condition_id)


def basket_segments(basket):
    """The basket owner's current segments (``{"rfm:champions", …}``), read
    once per basket; empty for guests and members not scored."""
    if not hasattr(basket, "_loyalty_segments"):
        from . import scoring

        member = basket_member(basket)
        basket._loyalty_segments = (
            scoring.segments_of(member.pk) if member is not None else set()
        )
    return basket._loyalty_segments


def basket_in_segment(basket, segment):
    return segment is not None and segment in basket_segments(basket)
