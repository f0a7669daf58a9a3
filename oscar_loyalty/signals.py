"""Signals the programme sends, for shops and the plugin's own apps to follow."""

from django.dispatch import Signal

#: A member's tier changed. Sent after the change is committed, with
#: ``member`` (:class:`~oscar_loyalty.models.Member`), ``old_tier`` and ``new_tier``
#: (:class:`~oscar_loyalty.models.Tier` or None) and ``change``
#: (:class:`~oscar_loyalty.models.TierChange`, the history row). The sender is the
#: ``Member`` class.
tier_changed = Signal()
