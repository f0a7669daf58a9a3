"""The plugin's tier, campaign and coupon offers are applied once per basket
(``max_basket_applications = 1``): each benefit takes every line it can in one
application, so Oscar's second try only ever failed. Offers an owner already gave
a limit keep it."""

from django.db import migrations


def _plugin_offer_ids(apps):
    ids = set()
    for model in ("TierOffer", "Campaign", "CouponDesign"):
        ids.update(
            apps.get_model("oscar_loyalty", model)
            .objects.exclude(offer__isnull=True)
            .values_list("offer_id", flat=True)
        )
    return ids


def apply_once(apps, schema_editor):
    ConditionalOffer = apps.get_model("offer", "ConditionalOffer")
    ConditionalOffer.objects.filter(
        pk__in=_plugin_offer_ids(apps), max_basket_applications__isnull=True
    ).update(max_basket_applications=1)


def apply_again(apps, schema_editor):
    ConditionalOffer = apps.get_model("offer", "ConditionalOffer")
    ConditionalOffer.objects.filter(
        pk__in=_plugin_offer_ids(apps), max_basket_applications=1
    ).update(max_basket_applications=None)


class Migration(migrations.Migration):
    dependencies = [
        ("offer", "0001_initial"),
        ("oscar_loyalty", "0013_campaign_order_no_constraint"),
    ]

    operations = [migrations.RunPython(apply_once, apply_again)]
