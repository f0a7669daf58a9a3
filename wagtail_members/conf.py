"""The app's settings, ``WAGTAIL_MEMBERS_*``, read at call time."""

from django.conf import settings

PREFIX = "WAGTAIL_MEMBERS_"

DEFAULTS = {
    # Template that every member page extends; point it at the site's own base.
    "BASE_TEMPLATE": "base.html",
    # Stories and suggestions one member may have in moderation at once.
    "MAX_WAITING_STORIES": 3,
    # Folder for the files of restricted collections, outside MEDIA_ROOT (default:
    # a folder beside it named "<media>-gated"); GatedFileSystemStorage's
    # ``gated_location`` option comes first.
    "GATED_MEDIA_ROOT": None,
    # When nginx serves the gated folder as an internal location, its prefix
    # (e.g. "/gated-media/"): the media view answers with X-Accel-Redirect.
    "MEDIA_ACCEL_REDIRECT": None,
}


def get_setting(name):
    if name not in DEFAULTS:
        raise AttributeError(f"{PREFIX}{name} is not a setting of wagtail_members")
    return getattr(settings, PREFIX + name, DEFAULTS[name])
