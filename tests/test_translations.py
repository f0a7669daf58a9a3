"""Every user-visible text has a Simplified Chinese translation, compiled, current."""

import gettext
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
CATALOGUES = [
    ROOT / app / "locale" / "zh_Hans" / "LC_MESSAGES" / "django.po"
    for app in ("oscar_loyalty", "wagtail_members", "example_shop")
]
ENTRY = re.compile(
    r"^(?P<comments>(?:#.*\n)*)"
    r'(?:msgctxt (?P<ctx>".*"\n))?'
    r'msgid (?P<id>(?:".*"\n)+)msgstr (?P<str>(?:".*"\n)+)',
    re.MULTILINE,
)


def _unquote(block):
    return "".join(
        bytes(line.strip()[1:-1], "utf-8")
        .decode("unicode_escape")
        .encode("latin-1")
        .decode("utf-8")
        for line in block.strip().splitlines()
    )


def _entries(po_path):
    text = po_path.read_text(encoding="utf-8") + "\n"
    for match in ENTRY.finditer(text):
        msgid = _unquote(match.group("id"))
        if msgid:
            context = _unquote(match.group("ctx")) if match.group("ctx") else None
            yield msgid, _unquote(match.group("str")), match.group("comments"), context


@pytest.mark.parametrize("po_path", CATALOGUES, ids=lambda p: p.parts[-5])
def test_every_message_is_translated_to_simplified_chinese(po_path):
    entries = list(_entries(po_path))
    assert entries, f"{po_path} has no messages"
    untranslated = [msgid for msgid, msgstr, *_ in entries if not msgstr]
    fuzzy = [msgid for msgid, _, comments, _ in entries if "#, fuzzy" in comments]
    assert untranslated == [], "run `make messages` and translate these"
    assert fuzzy == [], "review these fuzzy translations"


@pytest.mark.parametrize("po_path", CATALOGUES, ids=lambda p: p.parts[-5])
def test_the_compiled_catalogue_matches_its_source(po_path):
    mo_path = po_path.with_suffix(".mo")
    assert mo_path.exists(), f"{mo_path} is missing: run `make messages`"
    with mo_path.open("rb") as handle:
        compiled = gettext.GNUTranslations(handle)
    stale = [
        msgid
        for msgid, msgstr, _, context in _entries(po_path)
        if (compiled.pgettext(context, msgid) if context else compiled.gettext(msgid))
        != msgstr
    ]
    assert stale == [], "the .mo file is older than the .po file: run `make messages`"
