"""A collection for Gold and Diamond members and the picture of the Gold
evening in it: its files are kept out of public media and served only to
those tiers (wagtail_members.media)."""

from django.core.files.base import ContentFile
from wagtail.images import get_image_model
from wagtail.models import Collection, CollectionViewRestriction

from .images import render_product_image

COLLECTION_NAME = "Gold and Diamond members"
IMAGE_TITLE = "Wuyi rock tea tasting"
IMAGE_ALT = "Five cups of Wuyi rock tea on the tasting table"
IMAGE_FILE = "wuyi-rock-tea-tasting.jpg"


def gold_collection(report, groups):
    """The collection restricted to ``groups`` (the Gold tier's and above),
    made once, as an editor would with the collection's Privacy button."""
    collection = Collection.objects.filter(name=COLLECTION_NAME).first()
    if collection is not None:
        report.reused("collections", COLLECTION_NAME)
        return collection
    collection = Collection.get_first_root_node().add_child(name=COLLECTION_NAME)
    restriction = CollectionViewRestriction.objects.create(
        collection=collection, restriction_type=CollectionViewRestriction.GROUPS
    )
    restriction.groups.set(groups)
    report.created("collections", COLLECTION_NAME)
    return collection


def gold_tasting_image(report, groups):
    """The Gold evening's picture, in the Gold collection."""
    collection = gold_collection(report, groups)
    Image = get_image_model()
    image = Image.objects.filter(title=IMAGE_TITLE, collection=collection).first()
    if image is not None:
        report.reused("images", IMAGE_TITLE)
        return image
    picture = render_product_image("gold-evening", "Wuyi Yancha", "oolong")
    # Assigned, not file.save(): the file is written as the image is saved,
    # under the name its collection calls for.
    image = Image(
        title=IMAGE_TITLE,
        collection=collection,
        description=IMAGE_ALT,
        file=ContentFile(picture, name=IMAGE_FILE),
    )
    image.save()
    report.created("images", IMAGE_TITLE)
    return image


def figure(image, alt_text, caption):
    return ("figure", {
        "image": {"image": image, "alt_text": alt_text, "decorative": False},
        "caption": caption,
    })  # fmt: skip
