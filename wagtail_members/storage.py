"""A media storage that keeps the files of restricted collections private.

Wagtail applies a collection's Privacy setting to its documents' serve view,
never to images, and the files of both are plain media files: anyone who has
(or guesses) ``/media/original_images/gold-tasting.jpg`` or a rendition's
address can fetch it. With this storage as the default storage, every file
whose name carries :data:`MARKER` lives in a folder outside ``MEDIA_ROOT``
that no web server serves, and its URL is the ``wagtail_members:media`` view,
which checks the collection's restrictions for the reader first.

``wagtail_members.media`` gives the files of restricted collections the
marker (new uploads as they are saved; existing files when a collection gets
or loses its restriction). Rendition names start with the original's name, so
renditions of a marked original are marked too.
"""

import contextlib
import os
from pathlib import Path

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.urls import reverse
from django.utils._os import safe_join

from .conf import get_setting

#: Starts the base name of every file kept private.
MARKER = "gated--"


def is_gated_name(name):
    return bool(name) and os.path.basename(name).startswith(MARKER)


def gated_name(name):
    folder, base = os.path.split(name)
    return name if base.startswith(MARKER) else os.path.join(folder, MARKER + base)


def public_name(name):
    folder, base = os.path.split(name)
    return (
        os.path.join(folder, base[len(MARKER) :]) if base.startswith(MARKER) else name
    )


def keeps_files_private(storage):
    """Whether ``storage`` keeps marked files out of public media."""
    return bool(getattr(storage, "keeps_gated_files_private", False))


class GatedStorageMixin:
    """For a file-system storage: marked names resolve under
    :attr:`gated_location` and are served by ``wagtail_members:media``."""

    keeps_gated_files_private = True

    def __init__(self, *args, gated_location=None, **kwargs):
        self._gated_location = gated_location
        super().__init__(*args, **kwargs)

    @property
    def gated_location(self):
        location = self._gated_location or get_setting("GATED_MEDIA_ROOT")
        if not location:
            media = Path(settings.MEDIA_ROOT or ".")
            location = media.parent / f"{media.name or 'media'}-gated"
        return os.path.abspath(location)

    def path(self, name):
        if is_gated_name(name):
            return safe_join(self.gated_location, name)
        return super().path(name)

    def _save(self, name, content):
        saved = super()._save(name, content)
        if is_gated_name(saved):
            # The parent gives the name relative to ``location``: "../<gated>/…".
            full = os.path.normpath(os.path.join(self.location, saved))
            saved = os.path.relpath(full, self.gated_location).replace("\\", "/")
        return saved

    def _ensure_location_group_id(self, full_path):
        # The parent gives a new file the group of ``location``; a gated file
        # takes that of the gated folder (which may be all that exists).
        if not is_gated_name(full_path):
            return super()._ensure_location_group_id(full_path)
        if os.name == "posix":
            group = os.stat(self.gated_location).st_gid
            if os.stat(full_path).st_gid != group:
                with contextlib.suppress(PermissionError):
                    os.chown(full_path, uid=-1, gid=group)
        return None

    def url(self, name):
        if is_gated_name(name):
            return reverse("wagtail_members:media", kwargs={"name": name})
        return super().url(name)


class GatedFileSystemStorage(GatedStorageMixin, FileSystemStorage):
    """``STORAGES["default"]`` for a shop whose media are on its own disk."""
