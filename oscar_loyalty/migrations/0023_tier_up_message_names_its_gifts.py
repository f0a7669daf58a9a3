"""The tier-up message names the tier coupons the move brought (one message
instead of a tier-up and a coupon message). Rows of ``LOYALTY_TIER_UP`` still
holding the text 0019 gave them get the new text; rows the owner edited are left
as they are (their text is theirs: add the coupons block from the plugin's
template file if wanted)."""

from pathlib import Path

from django.db import migrations

CODES = ("LOYALTY_TIER_UP", "LOYALTY_TIER_UP_ZH_HANS")
EMAILS = (
    Path(__file__).resolve().parent.parent
    / "templates"
    / "oscar"
    / "communication"
    / "emails"
)
#: field: (the text 0019 wrote, the template file with the new one)
TEXTS = {
    "email_body_template": (
        '{% extends "oscar/communication/emails/base.txt" %}{% load i18n %}{% block body %}{% autoescape off %}{% blocktrans trimmed with name=user.get_full_name|default:user.email %}Hello {{ name }},{% endblocktrans %}\n\n{% blocktrans trimmed with tier=new_tier programme=programme_name %}Congratulations: you reached {{ tier }} in {{ programme }}.{% endblocktrans %}\n\n{% blocktrans trimmed %}Your new benefits apply from your next order.{% endblocktrans %}\n\n{% blocktrans trimmed %}You receive this message because you agreed to hear from us; change your choices on your account\'s Loyalty page.{% endblocktrans %}{% endautoescape %}{% endblock %}',
        "commtype_loyalty_tier_up_body.txt",
    ),
    "email_body_html_template": (
        '{% extends "oscar/communication/emails/base.html" %}{% load i18n %}\n{% block body %}\n<p>{% blocktrans trimmed with name=user.get_full_name|default:user.email %}Hello {{ name }},{% endblocktrans %}</p>\n<p>{% blocktrans trimmed with tier=new_tier programme=programme_name %}Congratulations: you reached {{ tier }} in {{ programme }}.{% endblocktrans %}</p>\n<p>{% blocktrans trimmed %}Your new benefits apply from your next order.{% endblocktrans %}</p>\n<p><small>{% blocktrans trimmed %}You receive this message because you agreed to hear from us; change your choices on your account\'s Loyalty page.{% endblocktrans %}</small></p>\n{% endblock %}',
        "commtype_loyalty_tier_up_body.html",
    ),
}


def update(apps, schema_editor):
    CommunicationEventType = apps.get_model("communication", "CommunicationEventType")
    for field, (old, name) in TEXTS.items():
        new = (EMAILS / name).read_text(encoding="utf-8").strip()
        CommunicationEventType.objects.filter(code__in=CODES, **{field: old}).update(
            **{field: new}
        )


class Migration(migrations.Migration):
    dependencies = [
        ("communication", "0001_initial"),
        ("oscar_loyalty", "0022_member_import_language"),
    ]

    operations = [migrations.RunPython(update, migrations.RunPython.noop)]
