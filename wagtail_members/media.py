"""Images and documents of restricted collections: where their files live and
who may fetch them.

A collection is *gated* when it or one of its ancestors has a view
restriction (Wagtail's Privacy setting on collections). The files of a gated
collection's images (originals and renditions) and documents carry
``storage.MARKER`` so a :class:`~wagtail_members.storage.GatedStorageMixin`
storage keeps them out of public media; :func:`serve` hands them out after the
same checks the collection's documents get from Wagtail, with the member pages'
403 for a member of a lower tier.

Files move when their collection's state changes: a new upload is named as it
is saved; a change of collection, or a restriction added to or removed from a
collection, moves the files after the commit (the latter in a task, as a
collection may hold many). ``manage.py place_gated_media`` puts every file
where it belongs, for files that were there before the app was installed.
"""

import logging
import mimetypes
import os
import posixpath
from urllib.parse import quote

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.db import transaction
from django.db.models import Q
from django.db.models.signals import post_delete, post_save, pre_save
from django.http import FileResponse, Http404, HttpResponse, HttpResponseNotAllowed
from django.utils.http import content_disposition_header
from wagtail.documents import get_document_model
from wagtail.images import get_image_model
from wagtail.models import Collection, CollectionViewRestriction

from .conf import get_setting
from .storage import MARKER, gated_name, is_gated_name, keeps_files_private, public_name

logger = logging.getLogger(__name__)

#: Browsers show what this view returns as an image or a download, never as a
#: page of the site: no scripts, even from an SVG.
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'; sandbox"
)


def gated_collection_ids():
    """Ids of the collections with a view restriction of their own or above."""
    paths = list(
        Collection.objects.filter(view_restrictions__isnull=False)
        .values_list("path", flat=True)
        .distinct()
    )
    if not paths:
        return set()
    reach = Q()
    for path in paths:
        reach |= Q(path__startswith=path)
    return set(Collection.objects.filter(reach).values_list("pk", flat=True))


def collection_is_gated(collection_id):
    collection = Collection.objects.filter(pk=collection_id).first()
    return bool(collection) and collection.get_view_restrictions().exists()


def _models():
    return [get_image_model(), get_document_model()]


def move_file(item, gated):
    """Give ``item``'s file the marker (``gated``) or take it away, moving the
    bytes; an image's renditions are deleted and made again under the new name
    when next asked for. Returns whether anything moved."""
    storage = item.file.storage
    old = item.file.name
    if not old or is_gated_name(old) == gated or not keeps_files_private(storage):
        return False
    wanted = gated_name(old) if gated else public_name(old)
    with storage.open(old, "rb") as content:
        new = storage.save(wanted, content)
    model = type(item)
    try:
        with transaction.atomic():
            updated = model.objects.filter(pk=item.pk, file=old).update(file=new)
            if updated and hasattr(item, "renditions"):
                # Rendition.post_delete removes their files after the commit and
                # purges Wagtail's rendition cache.
                item.renditions.all().delete()
    except BaseException:
        storage.delete(new)
        raise
    if not updated:
        # Changed meanwhile (a new file, or deleted): leave the new state alone.
        storage.delete(new)
        return False
    item.file.name = new
    # Once the new name is committed (at once outside a transaction).
    transaction.on_commit(lambda: storage.delete(old))
    return True


def place_files(items, gated_ids=None):
    """Move the files of ``items`` (images or documents) to where their
    collection's state says. Returns how many moved."""
    if gated_ids is None:
        gated_ids = gated_collection_ids()
    moved = 0
    for item in items:
        try:
            moved += move_file(item, item.collection_id in gated_ids)
        except FileNotFoundError:
            logger.warning(
                "%s %s has no file %r to move",
                type(item).__name__,
                item.pk,
                item.file.name,
            )
    return moved


def place_collection_files(collection_id=None):
    """Place the files of one collection and the collections under it (all
    collections when ``collection_id`` is None). Returns how many moved."""
    gated_ids = gated_collection_ids()
    reach = Q()
    if collection_id is not None:
        collection = Collection.objects.filter(pk=collection_id).first()
        if collection is None:
            return 0
        reach = Q(collection__path__startswith=collection.path)
    moved = 0
    for model in _models():
        marked = Q(file__contains="/" + MARKER) | Q(file__startswith=MARKER)
        gated = Q(collection_id__in=gated_ids)
        # Marked files of open collections, and unmarked ones of gated collections.
        items = model.objects.filter(reach).filter(
            (marked & ~gated) | (~marked & gated)
        )
        moved += place_files(items.order_by("pk").iterator(chunk_size=500), gated_ids)
    moved += drop_misplaced_renditions(reach)
    return moved


def drop_misplaced_renditions(reach=None):
    """Delete the renditions whose file is not where their image's is (made
    while the image moved, say); Wagtail makes them again, in the right place,
    when next asked for. Returns how many."""
    Image = get_image_model()
    marked = Q(file__contains="/" + MARKER) | Q(file__startswith=MARKER)
    image_marked = Q(image__file__contains="/" + MARKER) | Q(
        image__file__startswith=MARKER
    )
    rendition_reach = Q()
    if reach is not None and reach:
        rendition_reach = Q(image__in=Image.objects.filter(reach).values("pk"))
    wrong = (
        Image.get_rendition_model()
        .objects.filter(rendition_reach)
        .filter((marked & ~image_marked) | (~marked & image_marked))
    )
    count = 0
    for rendition in wrong.iterator(chunk_size=500):
        rendition.delete()  # its file goes after the commit (Wagtail's receiver)
        count += 1
    return count


# Receivers ----------------------------------------------------------------------


def name_new_upload(sender, instance, raw=False, **kwargs):
    """Before an image or document is saved: a file being uploaded into a gated
    collection is named with the marker before it is written (and one uploaded
    elsewhere without), so it is never public for a moment; a form loaded before
    its file moved keeps the file's new name instead of writing back the old."""
    file = instance.file
    if raw or not file or not keeps_files_private(file.storage):
        return
    if not getattr(file, "_committed", True):
        gated = collection_is_gated(instance.collection_id)
        base = os.path.basename(file.name)
        file.name = gated_name(base) if gated else public_name(base)
        return
    if instance.pk is None:
        return
    stored = (
        type(instance).objects.filter(pk=instance.pk).values_list("file", flat=True)
    )
    current = stored.first()
    if (
        current
        and current != file.name
        and public_name(current) == public_name(file.name)
    ):
        file.name = current


def gated_upload_to(upload_to):
    """Wrap an image's or rendition's ``get_upload_to`` so a file of a gated
    image gets the marker whichever way it is written (``file.save()``, Wagtail's
    multiple upload, ``bulk_create`` of renditions) and however long the
    rendition's filter spec (Wagtail shortens the name it inherits, and can cut
    the marker off)."""

    def get_upload_to(self, filename):
        name = upload_to(self, filename)
        if not keeps_files_private(self.file.storage):
            return name
        image = getattr(self, "image", None)
        if image is not None:  # a rendition: as its image's file
            gated = is_gated_name(image.file.name)
        else:
            gated = collection_is_gated(self.collection_id)
        return gated_name(name) if gated else public_name(name)

    get_upload_to.wagtail_members_gated = True
    return get_upload_to


def place_saved_item(sender, instance, raw=False, update_fields=None, **kwargs):
    """An image or document moved to another collection: its files follow,
    after the commit."""
    if raw or not instance.file or not keeps_files_private(instance.file.storage):
        return
    if update_fields is not None and not {"file", "collection"} & set(update_fields):
        return  # e.g. Wagtail storing a file's hash or focal point
    if is_gated_name(instance.file.name) == collection_is_gated(instance.collection_id):
        return
    pk = instance.pk
    model = type(instance)
    transaction.on_commit(lambda: place_files(model.objects.filter(pk=pk)), robust=True)


def restriction_changed(sender, instance, raw=False, **kwargs):
    """A collection got or lost a restriction: move its files in a task."""
    if raw:
        return
    collection_changed(instance.collection_id)


def collection_saved(sender, instance, raw=False, **kwargs):
    """A collection was saved (perhaps moved under another): its files follow."""
    if not raw:
        collection_changed(instance.pk)


def collection_changed(collection_id):
    """After the commit, place the collection's files in a task; if no task can
    be sent (the broker is down), here and now; if that fails too, the periodic
    ``wagtail_members.place_all_files`` does it. Never an error for the editor."""
    from .tasks import place_collection_files as task

    def send():
        try:
            task.delay(collection_id)
        except Exception:
            logger.exception(
                "Could not send the task placing collection %s's files", collection_id
            )
            place_collection_files(collection_id)

    transaction.on_commit(send, robust=True)


def connect():
    Image = get_image_model()
    for model in (Image, Image.get_rendition_model()):
        if not getattr(model.get_upload_to, "wagtail_members_gated", False):
            model.get_upload_to = gated_upload_to(model.get_upload_to)
    for model in _models():
        pre_save.connect(
            name_new_upload, sender=model, dispatch_uid=f"gate-{model._meta.label}"
        )
        post_save.connect(
            place_saved_item, sender=model, dispatch_uid=f"place-{model._meta.label}"
        )
    post_save.connect(
        restriction_changed,
        sender=CollectionViewRestriction,
        dispatch_uid="gate-restriction",
    )
    post_delete.connect(
        restriction_changed,
        sender=CollectionViewRestriction,
        dispatch_uid="ungate-restriction",
    )
    post_save.connect(
        collection_saved, sender=Collection, dispatch_uid="gate-collection"
    )


# Serving ------------------------------------------------------------------------


def find_file(name):
    """The image, rendition or document whose file is ``name``, with the
    collection that guards it; (None, None) when there is none."""
    Image = get_image_model()
    lookups = [
        (
            Image.get_rendition_model().objects.select_related("image__collection"),
            "image",
        ),
        (Image.objects.select_related("collection"), None),
        (get_document_model().objects.select_related("collection"), None),
    ]
    if not name.startswith("images/"):
        lookups.append(lookups.pop(0))  # an original or a document, most likely
    for queryset, via in lookups:
        found = queryset.filter(file=name).first()
        if found is not None:
            return found, (getattr(found, via) if via else found).collection
    return None, None


def may_view_unrestricted(user):
    """Editors see every collection's files, as in Wagtail's admin."""
    return user.is_active and user.has_perm("wagtailadmin.access_admin")


def refusal(request, restrictions):
    """None when ``request`` may have a file guarded by ``restrictions``, else
    the answer: visitors the login form, members of a lower tier the 403 page."""
    from .views import failed_group_restrictions, upgrade_response

    if not restrictions or may_view_unrestricted(request.user):
        return None
    failed = [r for r in restrictions if not r.accept_request(request)]
    if not failed:
        return None
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path(), str(settings.LOGIN_URL))
    return upgrade_response(request, failed_group_restrictions(failed, request))


def serve(request, name):
    """``wagtail_members:media``: a marked file, for those its collection lets in."""
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "HEAD"])
    if "\x00" in name or posixpath.normpath(name) != name or name.startswith("/"):
        raise Http404
    if not is_gated_name(name):
        raise Http404
    found, collection = find_file(name)
    if found is None:
        raise Http404
    restrictions = list(collection.get_view_restrictions())
    refused = refusal(request, restrictions)
    if refused is not None:
        return refused
    # What the reader's browser calls it: without the marker.
    filename = public_name(os.path.basename(name))
    content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    # A document downloads, as from Wagtail's own document view.
    as_attachment = isinstance(found, get_document_model())
    accel = get_setting("MEDIA_ACCEL_REDIRECT")
    if accel:
        response = HttpResponse(content_type=content_type)
        response["X-Accel-Redirect"] = accel.rstrip("/") + "/" + quote(name)
        if as_attachment:
            response["Content-Disposition"] = content_disposition_header(True, filename)
    else:
        try:
            response = FileResponse(
                found.file.storage.open(name, "rb"),
                content_type=content_type,
                as_attachment=as_attachment,
                filename=filename,
            )
        except FileNotFoundError:
            raise Http404 from None
    # Private even when the collection is open now: it was not a moment ago.
    response["Cache-Control"] = "private, max-age=3600"
    response["Vary"] = "Cookie"
    response["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
    response["X-Content-Type-Options"] = "nosniff"
    return response
