"""The app's settings, ``WAGTAIL_MEMBERS_*``, read at call time."""

from django.conf import settings

PREFIX = "WAGTAIL_MEMBERS_"

DEFAULTS = {
    # Template that every member page extends; point it at the site's own base.
    "BASE_TEMPLATE": "base.html",
    # Stories and suggestions one member may have in moderation at once.
    "MAX_WAITING_STORIES": 3,
}


def get_setting(name):
    if name not in DEFAULTS:
        raise AttributeError(f"{PREFIX}{name} is not a setting of wagtail_members")
    return getattr(settings, PREFIX + name, DEFAULTS[name])
