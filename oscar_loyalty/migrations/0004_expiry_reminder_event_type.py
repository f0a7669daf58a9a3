"""The reminder before points expire, as an Oscar communication event type.

With its row in place the owner finds the e-mail in the dashboard's "Email templates"
and edits it there. The row starts with the plugin's own file templates as its
text (Oscar's edit form requires all three fields, so an empty row would make the
owner write them from scratch); the template tags in them still translate at
sending time. Idempotent: a row the owner already has is left as it is. The code
is public API: ``oscar_loyalty.notifications.EXPIRY_REMINDER``.
"""

from pathlib import Path

from django.db import migrations

CODE = "LOYALTY_POINTS_EXPIRING"
TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
FILES = {
    "email_subject_template": "commtype_loyalty_points_expiring_subject.txt",
    "email_body_template": "commtype_loyalty_points_expiring_body.txt",
    "email_body_html_template": "commtype_loyalty_points_expiring_body.html",
}


def _template_text(name):
    path = TEMPLATES / "oscar" / "communication" / "emails" / name
    return path.read_text(encoding="utf-8").strip()


def create_event_type(apps, schema_editor):
    CommunicationEventType = apps.get_model("communication", "CommunicationEventType")
    if CommunicationEventType.objects.filter(code=CODE).exists():
        return
    CommunicationEventType.objects.create(
        code=CODE,
        name="Loyalty: points expire soon",
        category="User related",
        **{field: _template_text(name) for field, name in FILES.items()},
    )


def remove_event_type(apps, schema_editor):
    apps.get_model("communication", "CommunicationEventType").objects.filter(
        code=CODE
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("communication", "0001_initial"),
        ("oscar_loyalty", "0003_points_redemption_offer"),
    ]

    operations = [migrations.RunPython(create_event_type, remove_event_type)]
