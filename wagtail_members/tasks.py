"""Background work of the member pages."""

from celery import shared_task


@shared_task(
    name="wagtail_members.place_collection_files",
    acks_late=True,
    reject_on_worker_lost=True,
)
def place_collection_files(collection_id):
    """Move the files of a collection (and those under it) that just got or
    lost a view restriction. Safe to run twice: a file already in place is not
    touched."""
    from .media import place_collection_files as place

    return place(collection_id)


@shared_task(
    name="wagtail_members.place_all_files",
    acks_late=True,
    reject_on_worker_lost=True,
)
def place_all_files():
    """Periodic: every image, rendition and document file where its collection's
    privacy says, for changes no signal reports (Wagtail's bulk "Add to
    collection", a collection moved under a restricted one, a task that could
    not be sent). Moves nothing that is in place."""
    from .media import place_collection_files as place

    return place(None)
