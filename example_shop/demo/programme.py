"""The programme's offers in the demo: member coupons, the rewards catalogue,
campaigns and action rewards, as an owner would set them up in the dashboard.

* coupon designs: a welcome gift, a yearly birthday treat, a Gold-only gift, a
  win-back coupon, and the three coupons the rewards catalogue sells;
* rewards: ¥20 off for 2,000 points, free shipping for 500, a gaiwan for 3,000
  (Gold and Diamond, one each, 20 in stock);
* campaigns: a members' day (5 % off for Gold and Diamond, running now), spend
  ¥200 save ¥30 / ¥500 save ¥100 (running now) and double points on green tea
  (next week);
* action rewards: sign-up, daily check-in, approved reviews, birthday, profile
  completion and both sides of a referral;
* win-back: members whose churn risk reaches 70 get the win-back coupon (10 %
  control group);
* Mei's birthday is today (she has her birthday treat), Wei has a welcome gift,
  and Li, who has not ordered for a while, a win-back coupon from staff;
* programme settings: the owner changed the expiry reminders to 30 and 7 days
  before in the dashboard (the staff audit log shows it, "set back" undoes it).
"""

from datetime import timedelta
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.utils import timezone
from oscar.core.loading import get_model

from oscar_loyalty.dashboard.programme import save_settings
from oscar_loyalty.models import (
    ActionRule,
    Campaign,
    CampaignStep,
    CouponDesign,
    Member,
    MemberCoupon,
    Reward,
    Tier,
    WinBackRule,
)
from oscar_loyalty.services import coupons
from oscar_loyalty.services.ledger import Actor

Category = get_model("catalogue", "Category")
Product = get_model("catalogue", "Product")
Range = get_model("offer", "Range")

P = CouponDesign.Purpose
B = CouponDesign.BenefitType

#: name, purpose, benefit, value, minimum spend, valid days, tier code.
DESIGNS = (
    ("Welcome gift", P.WELCOME, B.FIXED, "15", "100", 30, None),
    ("Birthday treat", P.BIRTHDAY, B.FIXED, "20", "50", 30, None),
    ("Gold thank-you", P.TIER, B.PERCENTAGE, "10", "0", 60, "gold"),
    ("We miss you", P.WINBACK, B.PERCENTAGE, "15", "0", 21, None),
    ("¥20 voucher", P.REWARD, B.FIXED, "20", "0", 90, None),
    ("Free shipping", P.REWARD, B.SHIPPING, "0", "0", 90, None),
    ("Gaiwan on us", P.REWARD, B.PRODUCT, "0", "0", 90, None),
)
GAIWAN = "White porcelain gaiwan, 150 ml"

#: name, design, points, stock, tier codes, per-member limit, description.
REWARDS = (
    ("¥20 off your next order", "¥20 voucher", 2000, None, (), None,
     "A ¥20 voucher for any order, valid for 90 days."),
    ("Free shipping", "Free shipping", 500, None, (), None,
     "Your next order ships free."),
    ("A porcelain gaiwan", "Gaiwan on us", 3000, 20, ("gold", "diamond"), 1,
     "Our Dehua gaiwan, free with your next order. Gold and Diamond members."),
)  # fmt: skip

#: action, points, cap, cap period.
ACTIONS = (
    (ActionRule.Action.SIGNUP, 100, None, ActionRule.Period.EVER),
    (ActionRule.Action.CHECKIN, 5, 1, ActionRule.Period.DAY),
    (ActionRule.Action.REVIEW, 50, 5, ActionRule.Period.MONTH),
    (ActionRule.Action.BIRTHDAY, 200, 1, ActionRule.Period.YEAR),
    (ActionRule.Action.PROFILE, 100, 1, ActionRule.Period.EVER),
    (ActionRule.Action.REFERRER, 500, 10, ActionRule.Period.YEAR),
    (ActionRule.Action.REFERRED, 200, 1, ActionRule.Period.EVER),
    (ActionRule.Action.STORY, 100, 2, ActionRule.Period.MONTH),
)


def load_programme(report):
    report.start("Coupons, rewards and campaigns")
    designs = _designs(report)
    _rewards(report, designs)
    _campaigns(report, designs)
    _actions(report)
    _winback(report, designs)
    _coupons(report, designs)
    _settings(report)
    report.finish_section()


#: What the demo's owner changed on the dashboard's settings page.
SETTINGS = {"REMINDER_DAYS": [30, 7]}


def _settings(report):
    owner = get_user_model().objects.filter(username="admin").first()
    if owner is None:
        return
    for name in save_settings(owner, SETTINGS, list(SETTINGS)):
        report.created("programme settings", name)


def _designs(report):
    tiers = {tier.code: tier for tier in Tier.objects.all()}
    gaiwan = Product.objects.filter(title=GAIWAN).first()
    found = {}
    for name, purpose, benefit, value, minimum, days, tier in DESIGNS:
        design = CouponDesign.objects.filter(name=name, purpose=purpose).first()
        if design is None:
            design = CouponDesign.objects.create(
                name=name,
                purpose=purpose,
                benefit_type=benefit,
                value=Decimal(value),
                minimum_spend=Decimal(minimum),
                valid_days=days,
                tier=tiers.get(tier),
                product=gaiwan if benefit == B.PRODUCT else None,
            )
            report.created("coupon designs", name)
        else:
            report.reused("coupon designs", name)
        found[name] = design
    return found


def _rewards(report, designs):
    tiers = {tier.code: tier for tier in Tier.objects.all()}
    for position, (name, design, points, stock, tier_codes, limit, text) in enumerate(
        REWARDS
    ):
        if Reward.objects.filter(name=name).exists():
            report.reused("rewards", name)
            continue
        reward = Reward.objects.create(
            name=name,
            description=text,
            design=designs[design],
            points_price=points,
            stock=stock,
            per_member_limit=limit,
            refund_unused=design == "¥20 voucher",
            position=position,
        )
        reward.tiers.set([tiers[code] for code in tier_codes if code in tiers])
        report.created("rewards", name)


def _campaigns(report, designs):
    now = timezone.now().replace(minute=0, second=0, microsecond=0)
    tiers = {tier.code: tier for tier in Tier.objects.all()}
    green = Range.objects.filter(name="Green tea").first()
    if green is None:
        green = Range.objects.create(name="Green tea", is_public=True)
        category = Category.objects.filter(depth=1, name="Green tea").first()
        if category is not None:
            green.included_categories.add(category)
    wanted = (
        (
            "Members' Day: 5% off for Gold and Diamond",
            {
                "kind": Campaign.Kind.DISCOUNT,
                "discount_percent": Decimal("5"),
                "starts_at": now - timedelta(days=1),
                "ends_at": now + timedelta(days=30),
                "description": "Gold and Diamond members save 5% more on everything.",
            },
            ("gold", "diamond"),
            (),
        ),
        (
            "Spend ¥200 save ¥30, spend ¥500 save ¥100",
            {
                "kind": Campaign.Kind.SPEND_SAVE,
                "starts_at": now - timedelta(days=1),
                "ends_at": now + timedelta(days=30),
                "description": "For every member, on the whole basket.",
            },
            (),
            ((Decimal("200"), Decimal("30")), (Decimal("500"), Decimal("100"))),
        ),
        (
            "Double points on green tea",
            {
                "kind": Campaign.Kind.POINTS,
                "multiplier": Decimal("2"),
                "range": green,
                "starts_at": now + timedelta(days=7),
                "ends_at": now + timedelta(days=14),
                "description": "Spring harvest week: double points on green tea.",
            },
            (),
            (),
        ),
    )
    for name, fields, tier_codes, steps in wanted:
        if Campaign.objects.filter(name=name).exists():
            report.reused("campaigns", name)
            continue
        campaign = Campaign.objects.create(name=name, **fields)
        campaign.tiers.set([tiers[code] for code in tier_codes if code in tiers])
        for threshold, amount in steps:
            CampaignStep.objects.create(
                campaign=campaign, threshold=threshold, amount=amount
            )
        report.created("campaigns", name)


def _actions(report):
    for action, points, cap, period in ACTIONS:
        _rule, created = ActionRule.objects.get_or_create(
            action=action,
            defaults={"points": points, "cap": cap, "cap_period": period},
        )
        if created:
            report.created("action rewards", action)
        else:
            report.reused("action rewards", action)


def _winback(report, designs):
    """The owner's win-back rule: members whose churn risk reaches 70 get the
    "We miss you" coupon after the nightly scoring, once in 180 days, with a
    10 % control group (Loyalty → Win-back shows how many came back)."""
    _rule, created = WinBackRule.objects.get_or_create(
        name="We miss you",
        defaults={
            "threshold": 70,
            "action": WinBackRule.Action.COUPON,
            "coupon_design": designs["We miss you"],
            "period_days": 180,
            "holdout_percent": 10,
        },
    )
    if created:
        report.created("win-back rules", "We miss you")
    else:
        report.reused("win-back rules", "We miss you")


def _coupons(report, designs):
    """Mei's birthday today and her treat; Wei's welcome gift; Li's win-back."""
    today = timezone.localdate()
    members = {
        member.user.username: member
        for member in Member.objects.filter(
            user__username__in=["mei", "wei", "li"]
        ).select_related("user")
    }
    mei = members.get("mei")
    if mei is not None and mei.birth_month is None:
        Member.objects.filter(pk=mei.pk).update(
            birth_month=today.month, birth_day=today.day
        )
        report.updated("members", "mei: birthday")
    issued = coupons.issue_birthday_coupons(today=today)
    report.add("birthday coupons", "created" if issued else "reused", str(issued))
    wei = members.get("wei")
    if wei is not None:
        key = f"welcome:{designs['Welcome gift'].pk}:{wei.pk}"
        _issue(report, wei, designs["Welcome gift"], key)
    li = members.get("li")
    if li is not None:
        _issue(
            report,
            li,
            designs["We miss you"],
            f"staff:demo-winback-{li.pk}",
            reason="No order for four months: a win-back coupon",
        )


def _issue(report, member, design, key, reason=""):
    if MemberCoupon.objects.filter(key=key).exists():
        report.reused("coupons", f"{member.user.username}: {design.name}")
        return
    coupons.issue_coupon(
        member=member,
        design=design,
        key=key,
        reason=reason,
        actor=Actor(id=None, name="Lotus & Co."),
    )
    report.created("coupons", f"{member.user.username}: {design.name}")
