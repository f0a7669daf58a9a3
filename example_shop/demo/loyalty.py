"""The loyalty programme's own demo data: tiers, a points multiplier and consent.

Loaded before the orders, so demo orders earn as real ones would under the same
rules: oolong and black teas earn double points (an Oscar range over that
category, as an owner would set it up in the dashboard), and confirmed orders move
shoppers up the four tiers (spend over a rolling 12 months, the default basis).
Three shoppers agreed to expiry reminders, two to e-mails, one to text messages
and one to profiling; two agreed to nothing.
"""

from datetime import timedelta
from decimal import Decimal

from django.contrib.admin.models import CHANGE, LogEntry
from django.contrib.auth import get_user_model
from django.contrib.contenttypes.models import ContentType
from django.utils import timezone
from oscar.core.loading import get_model

from oscar_loyalty import consent, jobs
from oscar_loyalty.models import EarnRule, Member, MemberNote, Posting, Tier
from oscar_loyalty.services import ledger
from oscar_loyalty.services.members import get_or_create_member

Category = get_model("catalogue", "Category")
Range = get_model("offer", "Range")

RANGE_NAME = "Oolong & black tea"
RULE_NAME = "Double points on oolong & black tea"
#: What each shopper agreed to (reminders on the account page, the rest when
#: signing up), their phone and the language they use the shop in. Chen and Zhang
#: agreed to nothing: the demo shows members nothing is sent to.
PROFILES = {
    "mei": (("reminders", "email", "profiling"), "+8613800138001", "zh-hans"),
    "wei": (("reminders", "email", "sms"), "+8613800138002", "zh-hans"),
    "li": (("reminders",), "", "en"),
    "chen": ((), "+8613800138004", "zh-hans"),
    "zhang": ((), "", ""),
}

#: code, name, rank, threshold (CNY spent in 12 months), points multiplier,
#: member discount %, free shipping, badge, colour, description.
TIERS = (
    ("regular", "Regular", 0, "0", "1", "0", False, "🌱", "#6c757d",
     "Every member: points on every order."),
    ("silver", "Silver", 1, "1000", "1.25", "5", False, "🥈", "#8a9bb0",
     "25% more points and 5% off."),
    ("gold", "Gold", 2, "4000", "1.5", "8", True, "🥇", "#c9a227",
     "Half as many points again, 8% off and free shipping."),
    ("diamond", "Diamond", 3, "10000", "2", "10", True, "💎", "#3b7dd8",
     "Double points, 10% off and free shipping."),
)  # fmt: skip


def load_tiers(report):
    for (
        code,
        name,
        rank,
        threshold,
        multiplier,
        discount,
        free,
        badge,
        colour,
        text,
    ) in TIERS:
        values = {
            "name": name,
            "rank": rank,
            "threshold": Decimal(threshold),
            "points_multiplier": Decimal(multiplier),
            "discount_percent": Decimal(discount),
            "free_shipping": free,
            "badge": badge,
            "colour": colour,
            "description": text,
        }
        tier = Tier.objects.filter(code=code).first()
        if tier is None:
            Tier.objects.create(code=code, **values)
            report.created("tiers", name)
        else:
            report.reused("tiers", name)


def load_loyalty(report, shoppers):
    """Create the double-points rule and the shoppers' member accounts."""
    report.start("Loyalty")
    load_tiers(report)
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
        changed = load_profile(member, *PROFILES.get(user.username, ((), "", "")))
        if not existed:
            report.created("members", member.number)
        elif changed:
            report.updated("members", member.number)
        else:
            report.reused("members", member.number)
    report.finish_section()


def load_profile(member, agreed, phone, language):
    """The shopper's consents (recorded as they would be: from the sign-up form
    and the account page), phone and language; True if anything changed."""
    answers = {purpose: purpose.value in agreed for purpose in consent.Purpose}
    signup = {p: v for p, v in answers.items() if p in consent.SIGNUP_PURPOSES}
    changed = bool(consent.record(member, signup, source=consent.Source.SIGNUP))
    changed |= bool(
        consent.record(
            member,
            {consent.Purpose.REMINDERS: answers[consent.Purpose.REMINDERS]},
            source=consent.Source.ACCOUNT,
        )
    )
    if (member.phone, member.language) != (phone, language):
        Member.objects.filter(pk=member.pk).update(phone=phone, language=language)
        changed = True
    return changed


#: Gifts from staff long ago, so the demo shows points about to expire (Mei: in
#: about two weeks, with a reminder due) and points that already expired (Wei).
GIFTS = (
    ("mei", 300, 350, "Welcome to the Members' Club"),
    ("wei", 200, 400, "Welcome to the Members' Club"),
)


def load_loyalty_history(report):
    """Old staff gifts, then the expiry job as the hourly beat would have run it."""
    report.start("Loyalty history")
    now = timezone.now()
    User = get_user_model()
    for username, points, days_ago, reason in GIFTS:
        user = User.objects.filter(username=username).first()
        if user is None:
            continue
        key = f"adjust:demo-gift-{username}"
        if Posting.objects.filter(key=key).exists():
            report.reused("gifts", f"{username}: {points}")
            continue
        member = get_or_create_member(user)
        given_at = now - timedelta(days=days_ago)
        staff = User.objects.filter(username="admin").first()
        ledger.adjust(
            member=member,
            points=points,
            reason=reason,
            actor=ledger.Actor.from_user(staff)
            if staff
            else ledger.Actor(id=None, name="Lotus & Co."),
            key=key,
            now=given_at,
        )
        if staff:
            # As the dashboard's adjustment form records it: the staff audit log.
            LogEntry.objects.create(
                user=staff,
                content_type=ContentType.objects.get_for_model(Member),
                object_id=str(member.pk),
                object_repr=str(member)[:200],
                action_flag=CHANGE,
                change_message=f"Adjusted points by +{points}: {reason}",
                action_time=given_at,
            )
        report.created("gifts", f"{username}: {points}")
    staff = User.objects.filter(username="admin").first()
    mei = User.objects.filter(username="mei").first()
    if staff and mei:
        _note, created = MemberNote.objects.get_or_create(
            key="demo-note-mei",
            defaults={
                "member": get_or_create_member(mei),
                "text": "Prefers oolong samples with her orders; call before noon.",
                "author": staff,
                "author_name": staff.get_full_name() or staff.get_username(),
                "created_at": now - timedelta(days=30),
            },
        )
        report.add("member notes", "created" if created else "reused", "mei")
    expired = jobs.expire_lots(now=now)
    report.add("expired lots", "updated" if expired else "reused", str(expired))
    report.finish_section()
