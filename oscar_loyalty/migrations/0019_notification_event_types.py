"""The programme's messages as Oscar communication event types, one row per
language, so the owner edits the English and the Simplified Chinese versions in
the dashboard (Content → Email templates).

``LOYALTY_WELCOME`` serves members in any language (its template tags translate
at sending time); ``LOYALTY_WELCOME_ZH_HANS`` is what members who use the shop in
Simplified Chinese get, and starts with the same text (so it arrives in Chinese
until the owner rewrites it). Rows start with the plugin's file templates (Oscar's
edit form requires the e-mail fields; the SMS text stays in its file).
Idempotent: rows the owner already has are
left as they are. The codes are public API: ``oscar_loyalty.notifications.EVENTS``.
"""

from pathlib import Path

from django.db import migrations

EVENTS = {
    "LOYALTY_WELCOME": "welcome",
    "LOYALTY_POINTS_CONFIRMED": "points confirmed",
    "LOYALTY_TIER_UP": "tier up",
    "LOYALTY_TIER_DOWN": "tier down",
    "LOYALTY_COUPON_ISSUED": "coupon issued",
    "LOYALTY_BIRTHDAY": "birthday",
    "LOYALTY_REWARD_REDEEMED": "reward redeemed",
}
LANGUAGES = {"": "English", "_ZH_HANS": "简体中文"}
TEMPLATES = (
    Path(__file__).resolve().parent.parent / "templates" / "oscar" / "communication"
)
FILES = {
    "email_subject_template": "emails/commtype_{}_subject.txt",
    "email_body_template": "emails/commtype_{}_body.txt",
    "email_body_html_template": "emails/commtype_{}_body.html",
}
# The text messages stay in their files (Oscar's SMS field holds 170 characters,
# less than the templates with their tags): sms_template is left NULL.


def _template_text(pattern, code):
    return (
        (TEMPLATES / pattern.format(code.lower())).read_text(encoding="utf-8").strip()
    )


def create_event_types(apps, schema_editor):
    create(apps, EVENTS)


def create(apps, events):
    """Rows for ``events`` ({code: what}), in every language; later migrations
    adding an event call this too."""
    CommunicationEventType = apps.get_model("communication", "CommunicationEventType")
    existing = set(
        CommunicationEventType.objects.filter(code__startswith="LOYALTY_").values_list(
            "code", flat=True
        )
    )
    for code, what in events.items():
        texts = {
            field: _template_text(pattern, code) for field, pattern in FILES.items()
        }
        for suffix, language in LANGUAGES.items():
            if code + suffix in existing:
                continue
            CommunicationEventType.objects.create(
                code=code + suffix,
                name=f"Loyalty: {what} ({language})",
                category="User related",
                **texts,
            )


def remove_event_types(apps, schema_editor):
    apps.get_model("communication", "CommunicationEventType").objects.filter(
        code__in=[code + suffix for code in EVENTS for suffix in LANGUAGES]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("communication", "0001_initial"),
        ("oscar_loyalty", "0018_consent_phone_language_imports"),
    ]

    operations = [migrations.RunPython(create_event_types, remove_event_types)]
