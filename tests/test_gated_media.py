"""Images and documents of collections restricted to members or tiers: their
files stay out of public media and are handed out only to readers the
collection lets in (``wagtail_members.storage`` and ``wagtail_members.media``).

Real Wagtail images, renditions, documents and collections on the example
shop's storage and URLs; the pages are served by Wagtail.
"""
# The member pages' fixtures are imported, so test arguments name them again.
# ruff: noqa: F811

import io
import os
import re
from pathlib import Path

import pytest
from django.conf import settings
from django.contrib.auth.models import Group, Permission
from django.core.cache import cache
from django.core.checks import run_checks
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.test import Client
from PIL import Image as PILImage
from wagtail.documents import get_document_model
from wagtail.images import get_image_model
from wagtail.models import Collection, CollectionViewRestriction

from tests.factories import UserFactory
from tests.test_member_pages import (  # noqa: F401  (fixtures)
    benefits,
    gold_only,
    home,
    member_in,
    members,
    programme,
    signed_in,
)
from wagtail_members.media import gated_collection_ids
from wagtail_members.storage import MARKER

pytestmark = pytest.mark.django_db

Image = get_image_model()
Document = get_document_model()


@pytest.fixture(autouse=True)
def no_cached_renditions():
    """Wagtail keeps renditions in the cache by image id, and ids come round
    again once a test's rows are rolled back."""
    cache.clear()


def png(colour=(200, 160, 40)):
    buffer = io.BytesIO()
    PILImage.new("RGB", (320, 200), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def restrict(collection, programme, *codes):
    restriction = CollectionViewRestriction.objects.create(
        collection=collection, restriction_type=CollectionViewRestriction.GROUPS
    )
    restriction.groups.set(
        Group.objects.filter(name__in=[programme[c].group_name for c in codes])
    )
    return restriction


@pytest.fixture
def gold_collection(programme, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        collection = Collection.get_first_root_node().add_child(name="Gold only")
        restrict(collection, programme, "gold", "diamond")
    return collection


@pytest.fixture
def open_collection(db):
    return Collection.get_first_root_node().add_child(name="Shop pictures")


def upload(collection, name="tasting.png", content=None):
    """As Wagtail's upload form does: the file is written as the image is saved."""
    image = Image(
        title=name, collection=collection, file=ContentFile(content or png(), name=name)
    )
    image.save()
    return image


def under(path, folder):
    return Path(path).resolve().is_relative_to(Path(folder).resolve())


def editor_client():
    user = UserFactory()
    editors = Group.objects.create(name="Content editors")
    editors.permissions.add(
        Permission.objects.get(
            content_type__app_label="wagtailadmin", codename="access_admin"
        )
    )
    user.groups.add(editors)
    client = Client()
    client.force_login(user)
    return client


# Where the files live -----------------------------------------------------------


def test_an_image_uploaded_to_a_gold_collection_never_lands_in_public_media(
    gold_collection,
):
    image = upload(gold_collection)
    rendition = image.get_rendition("width-100")

    for file in (image.file, rendition.file):
        assert os.path.basename(file.name).startswith(MARKER)
        assert os.path.exists(file.path)
        assert under(file.path, settings.WAGTAIL_MEMBERS_GATED_MEDIA_ROOT)
        assert not under(file.path, settings.MEDIA_ROOT)
        assert file.url == f"/club/media/{file.name}"
    assert image.file.url.startswith("/club/media/original_images/gated--tasting")


def test_an_image_of_an_open_collection_stays_plain_public_media(open_collection):
    image = upload(open_collection, name=f"{MARKER}looks-gated.png")
    rendition = image.get_rendition("width-100")

    for file in (image.file, rendition.file):
        assert not os.path.basename(file.name).startswith(MARKER)
        assert under(file.path, settings.MEDIA_ROOT)
        assert file.url.startswith(settings.MEDIA_URL)


def test_a_collection_under_a_gated_one_is_gated_too(gold_collection):
    child = gold_collection.add_child(name="Gold evenings")
    image = upload(child)

    assert child.pk in gated_collection_ids()
    assert image.file.name.startswith(f"original_images/{MARKER}")


def test_restricting_a_collection_moves_its_files_and_opening_it_moves_them_back(
    open_collection, programme, django_capture_on_commit_callbacks
):
    content = png()
    image = upload(open_collection, content=content)
    rendition = image.get_rendition("width-100")
    public_original, public_rendition = image.file.path, rendition.file.path

    with django_capture_on_commit_callbacks(execute=True):
        restriction = restrict(open_collection, programme, "gold")

    image.refresh_from_db()
    # (a suffix when an earlier test left a file of that name)
    assert re.fullmatch(
        rf"original_images/{MARKER}tasting(_\w+)?\.png", image.file.name
    )
    assert under(image.file.path, settings.WAGTAIL_MEMBERS_GATED_MEDIA_ROOT)
    assert Path(image.file.path).read_bytes() == content
    assert not os.path.exists(public_original)
    assert not os.path.exists(public_rendition)  # made again, gated, when asked for
    assert not image.renditions.exists()
    again = image.get_rendition("width-100")
    assert under(again.file.path, settings.WAGTAIL_MEMBERS_GATED_MEDIA_ROOT)

    with django_capture_on_commit_callbacks(execute=True):
        restriction.delete()

    image.refresh_from_db()
    assert re.fullmatch(r"original_images/tasting(_\w+)?\.png", image.file.name)
    assert under(image.file.path, settings.MEDIA_ROOT)
    assert not image.renditions.exists()


def test_moving_an_image_into_a_gated_collection_moves_its_file(
    open_collection, gold_collection, django_capture_on_commit_callbacks
):
    image = upload(open_collection)

    with django_capture_on_commit_callbacks(execute=True):
        image.collection = gold_collection
        image.save()

    image.refresh_from_db()
    assert under(image.file.path, settings.WAGTAIL_MEMBERS_GATED_MEDIA_ROOT)


def test_the_command_places_files_that_were_there_before_and_is_idempotent(
    open_collection, programme
):
    image = upload(open_collection)
    # Restricted without the after-commit move (as before the app was installed).
    restrict(open_collection, programme, "gold")
    out = io.StringIO()

    call_command("place_gated_media", stdout=out)
    call_command("place_gated_media", stdout=out)

    assert out.getvalue().splitlines() == ["1 file(s) moved.", "0 file(s) moved."]
    image.refresh_from_db()
    assert under(image.file.path, settings.WAGTAIL_MEMBERS_GATED_MEDIA_ROOT)


def test_a_document_of_a_gold_collection_is_kept_out_of_public_media_too(
    gold_collection, programme
):
    document = Document(
        title="Price list",
        collection=gold_collection,
        file=ContentFile(b"gold prices", name="prices.txt"),
    )
    document.save()

    assert under(document.file.path, settings.WAGTAIL_MEMBERS_GATED_MEDIA_ROOT)
    silver = signed_in(member_in(programme["silver"]))
    gold = signed_in(member_in(programme["gold"]))
    # Wagtail's own document view reads it from there, for those it lets in.
    assert gold.get(document.url).getvalue() == b"gold prices"
    assert silver.get(document.url, follow=True).status_code == 403
    # Its file address is the guarded view: a download, never a page.
    raw = gold.get(document.file.url)
    assert raw.getvalue() == b"gold prices"
    assert raw["Content-Disposition"].startswith("attachment")
    assert silver.get(document.file.url).status_code == 403


# Who gets them ------------------------------------------------------------------


@pytest.fixture
def gated_image(gold_collection):
    return upload(gold_collection)


@pytest.mark.parametrize("kind", ["original", "rendition"])
def test_each_reader_gets_what_the_collection_allows(gated_image, programme, kind):
    file = (
        gated_image.file
        if kind == "original"
        else gated_image.get_rendition("fill-80x80").file
    )
    url = file.url
    content = file.storage.open(file.name).read()

    visitor = Client().get(url)
    assert visitor.status_code == 302
    assert visitor["Location"] == f"/shop/accounts/login/?next={url}"

    silver = signed_in(member_in(programme["silver"])).get(url)
    assert silver.status_code == 403
    assert "For Gold members and above" in silver.content.decode()

    for allowed in (
        signed_in(member_in(programme["gold"])),
        signed_in(member_in(programme["diamond"])),
        editor_client(),
    ):
        response = allowed.get(url)
        assert response.status_code == 200
        assert response.getvalue() == content
        assert response["Content-Type"] == "image/png"
        assert response["Cache-Control"] == "private, max-age=3600"
        assert "sandbox" in response["Content-Security-Policy"]
        assert response["X-Content-Type-Options"] == "nosniff"


def test_a_members_only_collection_lets_in_every_member(
    open_collection, programme, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        CollectionViewRestriction.objects.create(
            collection=open_collection,
            restriction_type=CollectionViewRestriction.LOGIN,
        )
    image = upload(open_collection)

    assert Client().get(image.file.url).status_code == 302
    member = signed_in(member_in(programme["regular"]))
    assert member.get(image.file.url).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        f"/club/media/original_images/{MARKER}nothing.png",
        "/club/media/original_images/tasting.png",  # not a gated name
        f"/club/media/../original_images/{MARKER}tasting.png",
        f"/club/media/original_images/{MARKER}tasting.png/../../../etc/passwd",
    ],
)
def test_anything_else_is_not_found(gated_image, programme, path):
    gold = signed_in(member_in(programme["gold"]))

    assert gold.get(path).status_code == 404


def test_the_view_only_reads(gated_image, programme):
    gold = signed_in(member_in(programme["gold"]))

    assert gold.post(gated_image.file.url).status_code == 405
    assert gold.head(gated_image.file.url).status_code == 200


def test_a_lost_file_is_not_found_not_an_error(gated_image, programme):
    gated_image.file.storage.delete(gated_image.file.name)
    gold = signed_in(member_in(programme["gold"]))

    assert gold.get(gated_image.file.url).status_code == 404


def test_nginx_can_send_the_file(gated_image, programme, settings):
    settings.WAGTAIL_MEMBERS_MEDIA_ACCEL_REDIRECT = "/gated-media/"
    gold = signed_in(member_in(programme["gold"]))

    response = gold.get(gated_image.file.url)

    assert response.status_code == 200
    assert response.content == b""
    assert response["X-Accel-Redirect"] == f"/gated-media/{gated_image.file.name}"
    silver = signed_in(member_in(programme["silver"]))
    assert "X-Accel-Redirect" not in silver.get(gated_image.file.url)


def test_the_join_view_knows_gated_files(gated_image, programme):
    url = gated_image.file.url

    silver = signed_in(member_in(programme["silver"])).get(f"/club/join/?next={url}")
    gold = signed_in(member_in(programme["gold"])).get(f"/club/join/?next={url}")

    assert silver.status_code == 403
    assert "For Gold members and above" in silver.content.decode()
    assert gold.status_code == 302 and gold["Location"] == url


# On a page ----------------------------------------------------------------------------


def test_a_gold_page_shows_its_gold_picture_to_gold_members_only(
    benefits, gated_image, programme
):
    page = benefits.get_children().get(slug="tasting-events").specific
    page.body = [
        (
            "figure",
            {
                "image": {
                    "image": gated_image,
                    "alt_text": "Five cups on the tasting table",
                    "decorative": False,
                },
                "caption": "Last spring's evening",
            },
        )
    ]
    page.save_revision().publish()
    gold_only(page, programme)
    gold = signed_in(member_in(programme["gold"]))

    html = gold.get("/members/benefits/tasting-events/").content.decode()

    assert "Last spring&#x27;s evening" in html
    assert 'alt="Five cups on the tasting table"' in html
    src = re.search(r'<img[^>]*class="figure-img[^>]*>', html)[0].split('src="')[1]
    src = src.split('"')[0]
    assert src.startswith(f"/club/media/images/{MARKER}")
    assert gold.get(src).status_code == 200
    silver = signed_in(member_in(programme["silver"]))
    assert silver.get("/members/benefits/tasting-events/").status_code == 403
    assert silver.get(src).status_code == 403
    assert Client().get(src).status_code == 302


# In Wagtail's admin ------------------------------------------------------------------


@pytest.fixture
def admin_client_(db):
    user = UserFactory(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    return client


def test_an_editor_uploads_into_the_gold_collection_in_wagtails_admin(
    admin_client_, gold_collection
):
    response = admin_client_.post(
        "/cms/images/add/",
        {
            "title": "Tasting table",
            "collection": gold_collection.pk,
            "file": SimpleUploadedFile("table.png", png(), content_type="image/png"),
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    image = Image.objects.get(title="Tasting table")
    assert under(image.file.path, settings.WAGTAIL_MEMBERS_GATED_MEDIA_ROOT)
    # Its thumbnail in the admin comes through the guarded view, which lets editors in.
    listing = admin_client_.get("/cms/images/").content.decode()
    thumbnail = re.search(rf'src="(/club/media/images/{MARKER}table[^"]+)"', listing)
    assert admin_client_.get(thumbnail[1]).status_code == 200


def test_setting_a_collections_privacy_in_wagtails_admin_moves_its_files(
    admin_client_, open_collection, programme, django_capture_on_commit_callbacks
):
    image = upload(open_collection)
    gold = Group.objects.get(name=programme["gold"].group_name)
    url = f"/cms/collections/{open_collection.pk}/privacy/"

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client_.post(
            url, {"restriction_type": "groups", "groups": [gold.pk]}
        )

    assert response.status_code == 200
    image.refresh_from_db()
    assert under(image.file.path, settings.WAGTAIL_MEMBERS_GATED_MEDIA_ROOT)
    assert Client().get(image.file.url).status_code == 302

    with django_capture_on_commit_callbacks(execute=True):
        admin_client_.post(url, {"restriction_type": "none"})

    image.refresh_from_db()
    assert under(image.file.path, settings.MEDIA_ROOT)
    assert image.file.url.startswith(settings.MEDIA_URL)


# Installation -----------------------------------------------------------------------


def test_a_storage_that_serves_everything_publicly_is_warned_about(settings):
    assert "wagtail_members.W007" not in {m.id for m in run_checks()}

    settings.STORAGES = {
        **settings.STORAGES,
        "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    }

    assert "wagtail_members.W007" in {m.id for m in run_checks()}


# Review findings -------------------------------------------------------------------


@pytest.mark.parametrize(
    "spec",
    [
        "fill-1200x630-c100|format-webp|webpquality-80",
        "width-1200|format-jpeg|jpegquality-80|bgcolor-ffffff",
    ],
)
def test_a_rendition_with_a_long_filter_spec_stays_private(gated_image, spec):
    gated_image.focal_point_x, gated_image.focal_point_y = 10, 10
    gated_image.focal_point_width = gated_image.focal_point_height = 20
    gated_image.save()

    rendition = gated_image.get_rendition(spec)

    assert os.path.basename(rendition.file.name).startswith(MARKER)
    assert under(rendition.file.path, settings.WAGTAIL_MEMBERS_GATED_MEDIA_ROOT)


def test_a_file_saved_directly_into_a_gated_collection_is_never_public(
    gold_collection,
):
    image = Image(title="Direct", collection=gold_collection)
    image.file.save("direct.png", ContentFile(png()), save=False)
    image.width, image.height = 320, 200
    image.save()

    assert under(image.file.path, settings.WAGTAIL_MEMBERS_GATED_MEDIA_ROOT)
    assert not (Path(settings.MEDIA_ROOT) / "original_images" / "direct.png").exists()


def test_the_periodic_check_places_files_no_signal_reported(
    open_collection, gold_collection
):
    from wagtail_members.tasks import place_all_files

    image = upload(open_collection)
    rendition = image.get_rendition("width-100")
    # As Wagtail's bulk "Add to collection" does: an UPDATE, no save().
    Image.objects.filter(pk=image.pk).update(collection=gold_collection)

    assert place_all_files.delay().get() == 1  # the original (its renditions go)
    image.refresh_from_db()
    assert under(image.file.path, settings.WAGTAIL_MEMBERS_GATED_MEDIA_ROOT)
    assert not type(rendition).objects.filter(pk=rendition.pk).exists()
    assert place_all_files.delay().get() == 0


def test_a_form_loaded_before_the_file_moved_does_not_point_at_the_old_file(
    open_collection, programme, django_capture_on_commit_callbacks
):
    image = upload(open_collection)
    stale = Image.objects.get(pk=image.pk)  # an edit form opened now
    with django_capture_on_commit_callbacks(execute=True):
        restrict(open_collection, programme, "gold")

    stale.title = "Renamed"
    stale.save()

    stale.refresh_from_db()
    assert stale.title == "Renamed"
    assert os.path.basename(stale.file.name).startswith(MARKER)
    assert os.path.exists(stale.file.path)


@pytest.mark.parametrize("path", ["original_images/gated--x%00.png", "a//gated--x.png"])
def test_odd_names_are_not_found_not_errors(gated_image, programme, path):
    gold = signed_in(member_in(programme["gold"]))

    assert gold.get(f"/club/media/{path}").status_code == 404


def test_a_download_is_named_without_the_marker(gold_collection, programme):
    document = Document(
        title="会员手册",
        collection=gold_collection,
        file=ContentFile(b"handbook", name="会员手册.txt"),
    )
    document.save()
    gold = signed_in(member_in(programme["gold"]))

    response = gold.get(document.file.url)

    assert MARKER not in response["Content-Disposition"]
    assert response["Cache-Control"] == "private, max-age=3600"
