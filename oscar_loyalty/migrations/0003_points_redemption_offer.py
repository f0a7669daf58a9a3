"""The programme's one SITE offer: points applied to a basket become money off.

Its condition and benefit are the plugin's proxies; their class paths are stored
here and are public API (see migrations/README.md). Idempotent, with a reverse.
"""

from django.db import migrations

CONDITION = "oscar_loyalty.models.PointsRedemptionCondition"
BENEFIT = "oscar_loyalty.models.PointsRedemptionBenefit"
OFFER_SLUG = "loyalty-points-redemption"


def create_offer(apps, schema_editor):
    Condition = apps.get_model("offer", "Condition")
    Benefit = apps.get_model("offer", "Benefit")
    ConditionalOffer = apps.get_model("offer", "ConditionalOffer")
    condition = Condition.objects.filter(proxy_class=CONDITION).first()
    if condition is None:
        condition = Condition.objects.create(proxy_class=CONDITION)
    benefit = Benefit.objects.filter(proxy_class=BENEFIT).first()
    if benefit is None:
        benefit = Benefit.objects.create(proxy_class=BENEFIT)
    if not ConditionalOffer.objects.filter(slug=OFFER_SLUG).exists():
        # Offer names are unique: a shop may already have an offer called "Points".
        name = "Points"
        if ConditionalOffer.objects.filter(name=name).exists():
            name = "Points (loyalty programme)"
        ConditionalOffer.objects.create(
            name=name,
            slug=OFFER_SLUG,
            # Shown to shoppers on Oscar's offers page.
            description=(
                "Members pay for part of their order with their points: apply them "
                "in the basket or at checkout."
            ),
            offer_type="Site",
            status="Open",
            exclusive=False,
            # After every other offer, so the limits see the basket they discount.
            priority=-1000,
            max_basket_applications=1,
            condition=condition,
            benefit=benefit,
        )


def remove_offer(apps, schema_editor):
    apps.get_model("offer", "ConditionalOffer").objects.filter(
        slug=OFFER_SLUG
    ).delete()
    apps.get_model("offer", "Condition").objects.filter(proxy_class=CONDITION).delete()
    apps.get_model("offer", "Benefit").objects.filter(proxy_class=BENEFIT).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("offer", "0007_conditionaloffer_exclusive"),
        ("oscar_loyalty", "0002_earn_rules_redemption_reminders"),
    ]

    operations = [migrations.RunPython(create_offer, remove_offer)]
