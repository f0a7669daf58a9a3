"""The loyalty programme's own demo data: a points multiplier and members' consent.

Loaded before the orders, so demo orders earn as real ones would under the same
rules: oolong and black teas earn double points (an Oscar range over that
category, as an owner would set it up in the dashboard). Three shoppers agreed to
expiry reminders; the others show a member who did not.
"""

from decimal import Decimal

from django.contrib.auth import get_user_model
from oscar.core.loading import get_model

from oscar_loyalty.models import EarnRule, Member
from oscar_loyalty.services.members import get_or_create_member

Category = get_model("catalogue", "Category")
Range = get_model("offer", "Range")

RANGE_NAME = "Oolong & black tea"
RULE_NAME = "Double points on oolong & black tea"
CONSENTING = ("mei", "wei", "li")


def load_loyalty(report, shoppers):
    """Create the double-points rule and the shoppers' member accounts."""
    report.start("Loyalty")
    points_range = Range.objects.filter(name=RANGE_NAME).first()
    if points_range is None:
        points_range = Range.objects.create(name=RANGE_NAME, is_public=True)
        category = Category.objects.filter(depth=1, name=RANGE_NAME).first()
        if category is not None:
            points_range.included_categories.add(category)
        report.created("ranges", RANGE_NAME)
    else:
        report.reused("ranges", RANGE_NAME)
    if EarnRule.objects.filter(name=RULE_NAME).exists():
        report.reused("earn rules", RULE_NAME)
    else:
        EarnRule.objects.create(
            name=RULE_NAME, range=points_range, multiplier=Decimal("2")
        )
        report.created("earn rules", RULE_NAME)

    User = get_user_model()
    for user in User.objects.filter(username__in=list(shoppers)).order_by("pk"):
        existed = Member.objects.filter(user=user).exists()
        member = get_or_create_member(user, channel=Member.Channel.WEB)
        wanted = user.username in CONSENTING
        changed = member.expiry_reminders != wanted
        if changed:
            Member.objects.filter(pk=member.pk).update(expiry_reminders=wanted)
        if not existed:
            report.created("members", member.number)
        elif changed:
            report.updated("members", member.number)
        else:
            report.reused("members", member.number)
    report.finish_section()
