"""The plugin's private all-products range answers without queries
(:class:`oscar_loyalty.ranges.AllProducts`): set its proxy class where it exists."""

from django.db import migrations

RANGE_NAME = "All products (loyalty tiers)"
PROXY = "oscar_loyalty.ranges.AllProducts"


def set_proxy(apps, schema_editor):
    Range = apps.get_model("offer", "Range")
    Range.objects.filter(name=RANGE_NAME).update(proxy_class=PROXY)


def unset_proxy(apps, schema_editor):
    Range = apps.get_model("offer", "Range")
    Range.objects.filter(name=RANGE_NAME, proxy_class=PROXY).update(proxy_class=None)


class Migration(migrations.Migration):
    dependencies = [
        ("offer", "0001_initial"),
        ("oscar_loyalty", "0011_campaigns_actions_referrals"),
    ]

    operations = [migrations.RunPython(set_proxy, unset_proxy)]
