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
