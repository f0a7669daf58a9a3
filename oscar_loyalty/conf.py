"""The plugin's settings, ``OSCAR_LOYALTY_*``, with defaults.

Read at call time (``loyalty_settings.NAME``), never copied at import, so that
``override_settings`` in tests and per-environment settings both work.
"""

from django.conf import settings
from django.utils.translation import gettext_lazy as _

PREFIX = "OSCAR_LOYALTY_"

DEFAULTS = {
    # Shown to shoppers and owners wherever the programme is named.
    "PROGRAMME_NAME": _("Members' Club"),
    # Confirmed points expire this many months after confirmation ...
    "EXPIRY_MONTHS": 12,
    # ... rounded up to the end of that month or year: "none", "month_end", "year_end".
    "EXPIRY_ROUNDING": "none",
    # Points applied to a basket are released if no order captures them in time.
    "HOLD_TIMEOUT_MINUTES": 30,
}


class LoyaltySettings:
    """Attribute access to ``OSCAR_LOYALTY_<NAME>`` with the plugin's default."""

    def __getattr__(self, name):
        if name not in DEFAULTS:
            raise AttributeError(f"{PREFIX}{name} is not a setting of oscar_loyalty")
        return getattr(settings, PREFIX + name, DEFAULTS[name])

    def as_dict(self):
        """Every setting with its value in force, for the dashboard's overview."""
        return {PREFIX + name: getattr(self, name) for name in sorted(DEFAULTS)}


loyalty_settings = LoyaltySettings()
