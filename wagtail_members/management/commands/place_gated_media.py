from django.core.files.storage import default_storage
from django.core.management.base import BaseCommand

from wagtail_members.media import place_collection_files
from wagtail_members.storage import keeps_files_private


class Command(BaseCommand):
    help = (
        "Move the files of images and documents to where their collection's privacy "
        "says: private for restricted collections, public media for the others."
    )

    def handle(self, *args, **options):
        if not keeps_files_private(default_storage):
            self.stderr.write(
                "The default storage does not keep files private (see check "
                "wagtail_members.W007); nothing moved."
            )
            return
        moved = place_collection_files()
        self.stdout.write(f"{moved} file(s) moved.")
