"""The points ledger: members, lots, postings and their entries, and holds.

Only :mod:`oscar_loyalty.services` writes these tables. Foreign keys to Oscar are
strings (``"order.Order"``) so shops that forked Oscar's apps keep working, and
ledger foreign keys use ``PROTECT``: history is never deleted with what it refers to.
"""

from decimal import Decimal

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import F, Q
from django.utils import timezone
from django.utils.text import format_lazy
from django.utils.translation import gettext_lazy as _
from oscar.core.loading import get_model

Benefit = get_model("offer", "Benefit")
Condition = get_model("offer", "Condition")


#: Named RFM segments (oscar_loyalty.scoring documents the mapping).
RFM_SEGMENTS = [
    ("champions", _("Champions")),
    ("loyal", _("Loyal")),
    ("potential", _("Potential loyalists")),
    ("new", _("New customers")),
    ("at_risk", _("At risk")),
    ("cant_lose", _("Can't lose them")),
    ("hibernating", _("Hibernating")),
    ("lost", _("Lost")),
    ("none", _("No confirmed orders")),
]

ACTIVITY_SEGMENTS = [
    ("active", _("Active")),
    ("cooling", _("Cooling")),
    ("at_risk", _("At risk")),
    ("dormant", _("Dormant")),
]
VALUE_SEGMENTS = [
    ("top", _("Top 20 %")),
    ("middle", _("Middle 60 %")),
    ("bottom", _("Bottom 20 %")),
    ("none", _("No purchases")),
]

#: Every segment, as ``dimension:segment`` (campaign audiences, offer conditions).
SEGMENT_DIMENSIONS = (
    ("activity", _("Activity"), ACTIVITY_SEGMENTS),
    ("value", _("Value"), VALUE_SEGMENTS),
    ("rfm", _("RFM"), RFM_SEGMENTS),
)
SEGMENT_CHOICES = [
    (f"{dimension}:{code}", format_lazy("{}: {}", dimension_label, label))
    for dimension, dimension_label, choices in SEGMENT_DIMENSIONS
    for code, label in choices
]


class Member(models.Model):
    """A customer's programme account, with balances cached from the ledger.

    ``available`` is the sum of the remainders of the member's active lots; ``held``
    is the part of it reserved by baskets at checkout, so ``spendable`` is their
    difference. ``check_loyalty_ledger`` recomputes all three from the rows.
    """

    class Channel(models.TextChoices):
        WEB = "web", _("Web sign-up")
        STORE = "store", _("In store")
        IMPORT = "import", _("Import")
        BACKFILL = "backfill", _("Existing customer")
        STAFF = "staff", _("Entered by staff")

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        related_name="loyalty_member",
        verbose_name=_("user"),
    )
    number = models.CharField(_("member number"), max_length=20, unique=True)
    channel = models.CharField(
        _("channel"), max_length=16, choices=Channel.choices, default=Channel.WEB
    )
    joined_at = models.DateTimeField(_("joined"), default=timezone.now)
    available = models.BigIntegerField(_("available points"), default=0)
    held = models.BigIntegerField(_("points held at checkout"), default=0)
    pending = models.BigIntegerField(_("pending points"), default=0)
    lifetime_earned = models.BigIntegerField(_("points earned in total"), default=0)
    expiry_reminders = models.BooleanField(
        _("e-mail me before my points expire"),
        default=False,
        help_text=_("The member agreed to reminders before points expire."),
    )
    tier = models.ForeignKey(
        "oscar_loyalty.Tier",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("tier"),
        help_text=_("Empty until the member first reaches a tier."),
    )
    tier_since = models.DateTimeField(_("in this tier since"), null=True, blank=True)
    tier_protected_until = models.DateTimeField(
        _("tier protected until"),
        null=True,
        blank=True,
        help_text=_("No downgrade at a review before this date."),
    )
    tier_grace_until = models.DateTimeField(
        _("downgrade grace until"),
        null=True,
        blank=True,
        help_text=_(
            "A review found the member below their tier: they keep it until this "
            "date, and lose it at the first review after it unless they qualify again."
        ),
    )

    referral_code = models.CharField(
        _("referral code"), max_length=16, unique=True, null=True, blank=True
    )
    birth_month = models.PositiveSmallIntegerField(
        _("birthday month"), null=True, blank=True
    )
    birth_day = models.PositiveSmallIntegerField(
        _("birthday day"), null=True, blank=True
    )
    # Fields added after the first release have database defaults too, so rows
    # written by SQL of a shop's own (or an older version) stay valid.
    phone = models.CharField(
        _("phone"),
        max_length=20,
        blank=True,
        db_default="",
        help_text=_("International format, e.g. +8613800138000."),
    )
    language = models.CharField(
        _("language"),
        max_length=16,
        blank=True,
        db_default="",
        help_text=_("The language messages are sent in; empty: the shop's default."),
    )
    # Consent per purpose: the member's current answer. Every change is also kept
    # as a ConsentChange (when, how, who); see oscar_loyalty.consent.
    consent_email = models.BooleanField(
        _("e-mails about points and offers"), default=False, db_default=False
    )
    consent_sms = models.BooleanField(
        _("text messages (SMS)"), default=False, db_default=False
    )
    consent_profiling = models.BooleanField(
        _("offers tailored to my orders (profiling)"), default=False, db_default=False
    )
    # Extra points for a while (a win-back offer): every line earns this many
    # times its points on top of the rule's and the tier's multipliers.
    points_boost = models.DecimalField(
        _("points boost"), max_digits=5, decimal_places=2, null=True, blank=True
    )
    points_boost_until = models.DateTimeField(
        _("points boost until"), null=True, blank=True
    )

    class Meta:
        verbose_name = _("member")
        verbose_name_plural = _("members")
        permissions = [
            ("adjust_points", _("Can add or take away a member's points")),
            ("set_tier", _("Can set a member's tier by hand")),
            ("issue_coupon", _("Can issue a coupon to a member")),
            (
                "record_consent",
                _("Can record a member's consent change made by phone or in person"),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(available__gte=0), name="loyalty_member_available_gte_0"
            ),
            models.CheckConstraint(
                condition=Q(held__gte=0) & Q(held__lte=F("available")),
                name="loyalty_member_held_within_available",
            ),
            models.CheckConstraint(
                condition=Q(pending__gte=0), name="loyalty_member_pending_gte_0"
            ),
            models.CheckConstraint(
                condition=Q(lifetime_earned__gte=0),
                name="loyalty_member_lifetime_earned_gte_0",
            ),
            models.CheckConstraint(
                condition=(
                    Q(birth_month__isnull=True, birth_day__isnull=True)
                    | Q(
                        birth_month__gte=1,
                        birth_month__lte=12,
                        birth_day__gte=1,
                        birth_day__lte=31,
                    )
                ),
                name="loyalty_member_birthday_valid",
            ),
            models.UniqueConstraint(
                fields=["phone"],
                condition=~Q(phone=""),
                name="loyalty_member_phone_unique",
                violation_error_message=_("Another member has this phone number."),
            ),
        ]
        indexes = [
            models.Index(
                fields=["birth_month", "birth_day"],
                name="loyalty_member_birthday",
                condition=Q(birth_month__isnull=False),
            ),
        ]

    def __str__(self):
        return self.number

    @property
    def spendable(self):
        """Points the member can apply now: available less what baskets hold."""
        return self.available - self.held

    def points_multiplier(self, at=None):
        """The member's own multiplier at ``at`` (now): their tier's times any
        points boost in force."""
        tier = Decimal(str(self.tier.points_multiplier)) if self.tier else Decimal(1)
        return tier * self.boost_at(at)

    def boost_at(self, at=None):
        """The points boost in force at ``at`` (now): 1 when there is none."""
        at = at or timezone.now()
        until = self.points_boost_until
        if self.points_boost and until and at < until:
            return self.points_boost
        return Decimal(1)


class Lot(models.Model):
    """Points earned together, spent and expired oldest expiry first.

    A lot is ``pending`` until its order can no longer be returned, then ``active``
    with an expiry date; ``remaining`` falls as points are redeemed, expired or
    reversed. Lots are ordered for consumption by (``expires_at``, ``id``).
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        ACTIVE = "active", _("Active")
        EXPIRED = "expired", _("Expired")
        REVERSED = "reversed", _("Reversed")

    class Source(models.TextChoices):
        EARN = "earn", _("Earned")
        ADJUST = "adjust", _("Added by staff")
        RESTORE = "restore", _("Returned from a cancelled order")
        REFUND = "refund", _("Returned from an unused reward")
        ACTION = "action", _("Earned by an action")
        IMPORT = "import", _("Opening balance (import)")

    member = models.ForeignKey(
        Member, on_delete=models.PROTECT, related_name="lots", verbose_name=_("member")
    )
    source = models.CharField(
        _("source"), max_length=12, choices=Source.choices, default=Source.EARN
    )
    status = models.CharField(
        _("status"), max_length=12, choices=Status.choices, default=Status.PENDING
    )
    points = models.BigIntegerField(_("points"))
    remaining = models.BigIntegerField(_("remaining points"))
    reversed = models.BigIntegerField(
        _("points reversed"),
        default=0,
        help_text=_("How many of the points cancellations and refunds took back."),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    confirmed_at = models.DateTimeField(_("confirmed"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expires"), null=True, blank=True)
    order_number = models.CharField(_("order number"), max_length=128, blank=True)
    order_line_id = models.BigIntegerField(_("order line"), null=True, blank=True)
    rule = models.CharField(_("rule"), max_length=64, blank=True)
    rule_version = models.PositiveIntegerField(_("rule version"), default=0)
    reminded_days = models.PositiveSmallIntegerField(
        _("last reminder (days before expiry)"),
        null=True,
        blank=True,
        help_text=_("The smallest reminder window the member was told about."),
    )

    class Meta:
        verbose_name = _("points lot")
        verbose_name_plural = _("points lots")
        constraints = [
            models.CheckConstraint(
                condition=Q(points__gt=0), name="loyalty_lot_points_gt_0"
            ),
            models.CheckConstraint(
                condition=Q(remaining__gte=0) & Q(remaining__lte=F("points")),
                name="loyalty_lot_remaining_within_points",
            ),
            models.CheckConstraint(
                condition=Q(reversed__gte=0) & Q(reversed__lte=F("points")),
                name="loyalty_lot_reversed_within_points",
            ),
            models.CheckConstraint(
                condition=~Q(status="active") | Q(expires_at__isnull=False),
                name="loyalty_lot_active_has_expiry",
            ),
        ]
        indexes = [
            models.Index(
                fields=["member", "expires_at", "id"],
                condition=Q(status="active", remaining__gt=0),
                name="loyalty_lot_spendable",
            ),
            models.Index(
                fields=["expires_at", "id"],
                condition=Q(status="active", remaining__gt=0),
                name="loyalty_lot_expiring",
            ),
            models.Index(fields=["order_number"], name="loyalty_lot_order"),
        ]

    def __str__(self):
        return f"{self.points} ({self.get_status_display()})"


class PostingQuerySet(models.QuerySet):
    def of_order(self, number):
        """Postings of the order ``number`` (a value or an ``OuterRef``).

        Spelling out ``order_number <> ''`` lets PostgreSQL use the partial index
        ``loyalty_posting_order`` even when the number comes from an outer query.
        """
        return self.filter(~Q(order_number=""), order_number=number)


class Posting(models.Model):
    """One business event on a member's points, written once.

    ``key`` names the event (``earn:<order>:<line>``, ``redeem:<order>``,
    ``expire:<lot>``, ``adjust:<uuid>``…) and is unique, so a retried or replayed
    event finds its posting and writes nothing twice. Who did it and why are kept as
    text, so history survives the deletion or renaming of a staff account.
    """

    class Kind(models.TextChoices):
        EARN = "earn", _("Earned")
        CONFIRM = "confirm", _("Confirmed")
        REDEEM = "redeem", _("Redeemed")
        RESTORE = "restore", _("Returned after cancellation")
        REFUND = "refund", _("Returned from an unused reward")
        REVERSE = "reverse", _("Reversed")
        EXPIRE = "expire", _("Expired")
        ADJUST = "adjust", _("Adjusted by staff")
        OPENING = "opening", _("Opening balance")

    # Unique through Meta.constraints: a plain unique index (no second index for
    # LIKE queries, which keys never see).
    key = models.CharField(_("idempotency key"), max_length=200)
    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    member = models.ForeignKey(
        Member,
        on_delete=models.PROTECT,
        related_name="postings",
        verbose_name=_("member"),
        db_index=False,  # loyalty_history starts with the member
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    order_number = models.CharField(_("order number"), max_length=128, blank=True)
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    actor_id = models.BigIntegerField(_("acting user id"), null=True, blank=True)
    actor_name = models.CharField(_("acting user"), max_length=255, blank=True)
    shortfall = models.BigIntegerField(
        _("points that could not be taken back"),
        default=0,
        help_text=_("A reversal larger than the balance takes what there is."),
    )

    objects = PostingQuerySet.as_manager()

    class Meta:
        verbose_name = _("points posting")
        verbose_name_plural = _("points postings")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["member", "-created_at", "-id"], name="loyalty_history"
            ),
            # Member scoring reads every member's redemptions, a small share of
            # the postings of a shop that has run for a while.
            models.Index(
                fields=["member", "created_at"],
                name="loyalty_posting_redeemed",
                condition=Q(kind="redeem"),
            ),
            # Postings without an order (expiry, staff) are most of a big run's
            # writes and are never looked up by order number.
            models.Index(
                fields=["order_number"],
                name="loyalty_posting_order",
                condition=~Q(order_number=""),
            ),
        ]
        constraints = [
            models.UniqueConstraint(fields=["key"], name="loyalty_posting_key"),
            models.CheckConstraint(
                condition=Q(shortfall__gte=0), name="loyalty_posting_shortfall_gte_0"
            ),
        ]

    def __str__(self):
        return self.key

    def delete(self, *args, **kwargs):
        raise TypeError("Ledger postings are append-only and cannot be deleted.")


class Entry(models.Model):
    """A posting's change to one lot: signed changes to available and pending."""

    posting = models.ForeignKey(
        Posting,
        on_delete=models.PROTECT,
        related_name="entries",
        db_index=False,  # loyalty_entry_one_per_lot starts with the posting
    )
    member = models.ForeignKey(Member, on_delete=models.PROTECT, related_name="+")
    lot = models.ForeignKey(Lot, on_delete=models.PROTECT, related_name="entries")
    available_change = models.BigIntegerField(_("change to available"), default=0)
    pending_change = models.BigIntegerField(_("change to pending"), default=0)

    class Meta:
        verbose_name = _("points entry")
        verbose_name_plural = _("points entries")
        constraints = [
            models.UniqueConstraint(
                fields=["posting", "lot"], name="loyalty_entry_one_per_lot"
            ),
            models.CheckConstraint(
                condition=~Q(available_change=0) | ~Q(pending_change=0),
                name="loyalty_entry_changes_something",
            ),
        ]

    def __str__(self):
        return f"{self.posting.key} → lot {self.lot_id}"

    def delete(self, *args, **kwargs):
        raise TypeError("Ledger entries are append-only and cannot be deleted.")


class Hold(models.Model):
    """Points reserved by a basket at checkout until the order captures them.

    A basket has at most one active hold. Capturing turns it into a ``redeem``
    posting inside the order's transaction; removing the points, a basket change or
    the timeout releases it, and the points are spendable again at once.
    """

    class Status(models.TextChoices):
        ACTIVE = "active", _("Active")
        CAPTURED = "captured", _("Captured")
        RELEASED = "released", _("Released")

    member = models.ForeignKey(
        Member, on_delete=models.PROTECT, related_name="holds", verbose_name=_("member")
    )
    basket_id = models.BigIntegerField(_("basket"))
    points = models.BigIntegerField(_("points"))
    status = models.CharField(
        _("status"), max_length=12, choices=Status.choices, default=Status.ACTIVE
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    expires_at = models.DateTimeField(_("expires"))
    closed_at = models.DateTimeField(_("closed"), null=True, blank=True)
    order_number = models.CharField(_("order number"), max_length=128, blank=True)

    class Meta:
        verbose_name = _("points hold")
        verbose_name_plural = _("points holds")
        constraints = [
            models.CheckConstraint(
                condition=Q(points__gt=0), name="loyalty_hold_points_gt_0"
            ),
            models.UniqueConstraint(
                fields=["basket_id"],
                condition=Q(status="active"),
                name="loyalty_hold_one_active_per_basket",
            ),
        ]
        indexes = [
            models.Index(
                fields=["expires_at"],
                condition=Q(status="active"),
                name="loyalty_hold_stale",
            ),
        ]

    def __str__(self):
        return f"{self.points} for basket {self.basket_id} ({self.status})"


class EarnRule(models.Model):
    """A points multiplier for the products of an Oscar range ("double points on tea").

    A line whose product is in several active rules' ranges earns with the highest
    multiplier. ``version`` goes up on every change, and each lot records the rule
    and version that produced it, so refunds reverse exactly what a line earned.
    """

    name = models.CharField(_("name"), max_length=128)
    range = models.ForeignKey(
        "offer.Range",
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("products"),
        help_text=_("The Oscar range whose products this rule applies to."),
    )
    multiplier = models.DecimalField(
        _("multiplier"),
        max_digits=6,
        decimal_places=2,
        help_text=_("2 earns double points, 1.5 half as many again."),
    )
    starts_at = models.DateTimeField(_("starts"), null=True, blank=True)
    ends_at = models.DateTimeField(_("ends"), null=True, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    version = models.PositiveIntegerField(_("version"), default=1)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        verbose_name = _("earn rule")
        verbose_name_plural = _("earn rules")
        ordering = ["-multiplier", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(multiplier__gt=0), name="loyalty_earnrule_multiplier_gt_0"
            ),
            models.CheckConstraint(
                condition=Q(starts_at__isnull=True)
                | Q(ends_at__isnull=True)
                | Q(ends_at__gt=F("starts_at")),
                name="loyalty_earnrule_ends_after_start",
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def code(self):
        """What lots record as their ``rule``."""
        return f"rule:{self.pk}"


class PointsRedemptionCondition(Condition):
    """Satisfied when the basket's owner has applied points to it.

    Registered on the programme's one SITE offer by a data migration; the class
    path is stored in the database, so it never moves.
    """

    class Meta:
        proxy = True
        verbose_name = _("Points applied condition")
        verbose_name_plural = _("Points applied conditions")

    @property
    def name(self):
        return str(_("Points applied to the basket"))  # Oscar's offer forms need text

    @property
    def description(self):
        return self.name

    def is_satisfied(self, offer, basket):
        from .offer_cache import prime
        from .redemption import basket_hold_points

        prime(offer, basket, condition=self)
        return basket_hold_points(basket) > 0


class PointsRedemptionBenefit(Benefit):
    """Turns the points applied to a basket into a discount on its lines.

    The discount is worked out again on every request from the basket and the
    owner's limits (see :mod:`oscar_loyalty.redemption`); inside Oscar's
    ``OrderCreator`` transaction, :meth:`apply_deferred` captures the basket's hold,
    so the order and the debit of the points commit together.
    """

    class Meta:
        proxy = True
        verbose_name = _("Points redemption benefit")
        verbose_name_plural = _("Points redemption benefits")

    @property
    def name(self):
        return str(_("Money off for points"))  # Oscar's offer forms need text

    @property
    def description(self):
        return self.name

    def apply(self, basket, condition, offer, **kwargs):
        from .redemption import apply_points_discount

        return apply_points_discount(self, basket, offer)

    def apply_deferred(self, basket, order, application):
        from .redemption import capture_for_order

        return capture_for_order(basket, order, application)


#: A tier's colour: ``#rrggbb``.
TIER_COLOUR_PATTERN = r"^#[0-9a-fA-F]{6}$"


class Tier(models.Model):
    """A level of the programme: who reaches it and what it gives.

    Tiers are ranked; a member is in the highest tier whose ``threshold`` their
    qualifying activity reaches (on the programme's basis: spend, points or orders,
    see ``OSCAR_LOYALTY_TIER_BASIS``). A tier includes the benefits of the tiers
    below it. Each tier has a Django group (cumulative: a Gold member is in the
    Regular, Silver and Gold groups) that Wagtail's page privacy can restrict to.
    """

    code = models.SlugField(
        _("code"),
        max_length=32,
        unique=True,
        help_text=_("Short and permanent, e.g. gold; names the tier's group."),
    )
    name = models.CharField(_("name"), max_length=64)
    rank = models.PositiveSmallIntegerField(
        _("rank"), unique=True, help_text=_("Higher ranks are better tiers.")
    )
    threshold = models.DecimalField(
        _("qualifying threshold"),
        max_digits=14,
        decimal_places=2,
        default=0,
        help_text=_(
            "Spend, points or orders (the programme's basis) within the "
            "qualifying window that reach this tier."
        ),
    )
    points_multiplier = models.DecimalField(
        _("points multiplier"), max_digits=5, decimal_places=2, default=1
    )
    discount_percent = models.DecimalField(
        _("member discount (%)"), max_digits=5, decimal_places=2, default=0
    )
    free_shipping = models.BooleanField(_("free shipping"), default=False)
    badge = models.CharField(
        _("badge"), max_length=32, blank=True, help_text=_("A short label or emoji.")
    )
    colour = models.CharField(
        _("colour"),
        max_length=7,
        default="#6c757d",
        validators=[
            RegexValidator(
                TIER_COLOUR_PATTERN,
                _("Enter a colour as # and six hex digits, e.g. #d4af37."),
            )
        ],
    )
    description = models.TextField(_("description"), blank=True)
    group = models.OneToOneField(
        "auth.Group",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        editable=False,
        related_name="loyalty_tier",
        verbose_name=_("group"),
    )

    class Meta:
        verbose_name = _("tier")
        verbose_name_plural = _("tiers")
        ordering = ["rank"]
        constraints = [
            models.CheckConstraint(
                condition=Q(threshold__gte=0), name="loyalty_tier_threshold_gte_0"
            ),
            models.CheckConstraint(
                condition=Q(points_multiplier__gte=0),
                name="loyalty_tier_multiplier_gte_0",
            ),
            models.CheckConstraint(
                condition=Q(discount_percent__gte=0) & Q(discount_percent__lte=100),
                name="loyalty_tier_discount_0_100",
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def group_name(self):
        return f"loyalty:{self.code}"


class TierChange(models.Model):
    """One change of a member's tier, kept for staff and the member to see."""

    class Kind(models.TextChoices):
        UPGRADE = "upgrade", _("Qualified for a higher tier")
        REVIEW = "review", _("Periodic review")
        STAFF = "staff", _("Set by staff")

    member = models.ForeignKey(
        Member,
        on_delete=models.PROTECT,
        related_name="tier_changes",
        verbose_name=_("member"),
        db_index=False,  # loyalty_tier_history starts with the member
    )
    from_tier = models.ForeignKey(
        Tier,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("from"),
    )
    to_tier = models.ForeignKey(
        Tier,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("to"),
    )
    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    qualifying_value = models.DecimalField(
        _("qualifying activity"), max_digits=14, decimal_places=2, default=0
    )
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    actor_id = models.BigIntegerField(_("acting user id"), null=True, blank=True)
    actor_name = models.CharField(_("acting user"), max_length=255, blank=True)
    protected_until = models.DateTimeField(_("protected until"), null=True, blank=True)
    created_at = models.DateTimeField(_("changed"), default=timezone.now)

    class Meta:
        verbose_name = _("tier change")
        verbose_name_plural = _("tier changes")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["member", "-created_at", "-id"], name="loyalty_tier_history"
            ),
        ]

    def __str__(self):
        return f"{self.member} {self.from_tier} → {self.to_tier}"


class OrderActivity(models.Model):
    """What an order counts towards tiers: its spend, once it is confirmed.

    Written with the order's points (every order of a member, also one that earns
    no points), confirmed when its points are (a confirm status), reduced by
    refunds and voided by a cancel status. With a return window set, an order past
    it counts as confirmed unless cancelled.
    """

    member = models.ForeignKey(
        Member,
        on_delete=models.PROTECT,
        related_name="+",
        verbose_name=_("member"),
        db_index=False,  # loyalty_activity_member starts with the member
    )
    order_number = models.CharField(_("order number"), max_length=128, unique=True)
    placed_at = models.DateTimeField(_("placed"))
    spend = models.DecimalField(_("spend"), max_digits=14, decimal_places=2)
    refunded = models.DecimalField(
        _("refunded"), max_digits=14, decimal_places=2, default=0
    )
    confirmed_at = models.DateTimeField(_("confirmed"), null=True, blank=True)
    cancelled_at = models.DateTimeField(_("cancelled"), null=True, blank=True)

    class Meta:
        verbose_name = _("order activity")
        verbose_name_plural = _("order activity")
        indexes = [
            # Covering (on PostgreSQL): scoring and tier reviews sum a member's
            # orders from the index alone.
            models.Index(
                fields=["member", "placed_at"],
                name="loyalty_activity_member",
                include=["spend", "refunded", "confirmed_at", "cancelled_at"],
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(spend__gte=0)
                & Q(refunded__gte=0)
                & Q(refunded__lte=F("spend")),
                name="loyalty_activity_refund_within_spend",
            ),
        ]

    def __str__(self):
        return self.order_number


class TierOffer(models.Model):
    """The Oscar offer that gives a tier's members their discount or free shipping.

    Created and kept in step with the tier by :mod:`oscar_loyalty.tier_offers`
    whenever a tier is saved; owners see the offers in Oscar's offer list, where
    priority and exclusivity can be changed like any other offer's.
    """

    class Kind(models.TextChoices):
        DISCOUNT = "discount", _("Member discount")
        SHIPPING = "shipping", _("Free shipping")

    tier = models.ForeignKey(
        Tier, on_delete=models.CASCADE, related_name="offers", verbose_name=_("tier")
    )
    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    offer = models.OneToOneField(
        "offer.ConditionalOffer",
        on_delete=models.CASCADE,
        related_name="loyalty_tier_offer",
        verbose_name=_("offer"),
    )

    class Meta:
        verbose_name = _("tier offer")
        verbose_name_plural = _("tier offers")
        constraints = [
            models.UniqueConstraint(
                fields=["tier", "kind"], name="loyalty_tier_offer_one_per_kind"
            ),
        ]

    def __str__(self):
        return f"{self.tier}: {self.get_kind_display()}"


class TierCondition(Condition):
    """Satisfied for a member whose tier's best benefit of this kind is this offer's.

    Higher tiers include the benefits of lower ones, yet a Gold member gets Gold's
    8 % and not Silver's 5 % as well: of the tier offers of one kind, only the one
    of the highest tier at or below the member's tier applies. Guests and members
    without a tier never satisfy it. Two queries per request whatever the number
    of offers (cached on the basket).
    """

    class Meta:
        proxy = True
        verbose_name = _("Tier condition")
        verbose_name_plural = _("Tier conditions")

    @property
    def name(self):
        return str(_("Member of a loyalty tier"))  # Oscar's offer forms need text

    @property
    def description(self):
        return self.name

    def is_satisfied(self, offer, basket):
        from .offer_cache import prime
        from .tier_offers import offer_applies

        prime(offer, basket, condition=self)
        return offer_applies(offer, basket)

    def can_apply_condition(self, line):
        return False  # consumes no items: the benefit's range decides the lines


class CouponDesign(models.Model):
    """A kind of member coupon the owner offers: what it gives, for how long, when.

    Each design has one Oscar voucher offer (condition
    :class:`MemberCouponCondition`, kept in step by :mod:`oscar_loyalty.coupons`);
    every coupon issued from it is an Oscar voucher of that offer with a code of its
    own, bound to one member by a :class:`MemberCoupon`.
    """

    class Purpose(models.TextChoices):
        WELCOME = "welcome", _("Welcome (on sign-up)")
        BIRTHDAY = "birthday", _("Birthday (every year)")
        TIER = "tier", _("Tier-exclusive (on reaching the tier)")
        WINBACK = "winback", _("Win-back")
        REWARD = "reward", _("Bought with points")
        STAFF = "staff", _("Issued by staff")

    class BenefitType(models.TextChoices):
        PERCENTAGE = "percentage", _("Percentage off the basket")
        FIXED = "fixed", _("Fixed amount off the basket")
        SHIPPING = "shipping", _("Free shipping")
        PRODUCT = "product", _("A product free")

    name = models.CharField(
        _("name"), max_length=64, help_text=_("Shoppers see it, e.g. Birthday treat.")
    )
    purpose = models.CharField(_("purpose"), max_length=12, choices=Purpose.choices)
    benefit_type = models.CharField(
        _("benefit"), max_length=12, choices=BenefitType.choices
    )
    value = models.DecimalField(
        _("value"),
        max_digits=12,
        decimal_places=2,
        default=0,
        help_text=_("Percent or amount off; not used for free shipping."),
    )
    minimum_spend = models.DecimalField(
        _("minimum spend"), max_digits=12, decimal_places=2, default=0
    )
    valid_days = models.PositiveSmallIntegerField(
        _("valid for (days)"), default=30, help_text=_("From the day it is issued.")
    )
    product = models.ForeignKey(
        "catalogue.Product",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("product"),
        help_text=_("For a free product: one item of it costs nothing."),
    )
    product_range = models.OneToOneField(
        "offer.Range",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="+",
        verbose_name=_("product range"),
    )
    multi_use = models.BooleanField(
        _("usable on several orders"),
        default=False,
        help_text=_("Otherwise a coupon is used up by its first order."),
    )
    tier = models.ForeignKey(
        Tier,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="coupon_designs",
        verbose_name=_("tier"),
        help_text=_(
            "Only members of this tier or a higher one can use the coupon; "
            "tier-exclusive coupons are issued on reaching it."
        ),
    )
    is_active = models.BooleanField(
        _("issuing"),
        default=True,
        help_text=_("Coupons already issued stay valid when this is switched off."),
    )
    offer = models.OneToOneField(
        "offer.ConditionalOffer",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        editable=False,
        related_name="loyalty_coupon_design",
        verbose_name=_("offer"),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("coupon design")
        verbose_name_plural = _("coupon designs")
        ordering = ["purpose", "name"]
        constraints = [
            models.CheckConstraint(
                condition=Q(value__gte=0) & Q(minimum_spend__gte=0),
                name="loyalty_coupon_design_amounts_gte_0",
            ),
            models.CheckConstraint(
                condition=~Q(benefit_type="percentage") | Q(value__lte=100),
                name="loyalty_coupon_design_percent_lte_100",
            ),
            models.CheckConstraint(
                condition=Q(valid_days__gte=1),
                name="loyalty_coupon_design_valid_days_gte_1",
            ),
            models.CheckConstraint(
                condition=~Q(purpose="tier") | Q(tier__isnull=False),
                name="loyalty_coupon_design_tier_purpose_has_tier",
            ),
        ]

    def __str__(self):
        return self.name


class MemberCouponQuerySet(models.QuerySet):
    """Coupons by state; a used coupon is a single-use one on an order (Oscar
    counts them in ``num_orders``), an expired one is past its end unused."""

    def _unused(self):
        return self.filter(Q(voucher__usage="Multi-use") | Q(voucher__num_orders=0))

    def usable(self, now=None):
        now = now or timezone.now()
        return self._unused().filter(
            voucher__start_datetime__lte=now, voucher__end_datetime__gt=now
        )

    def used(self):
        return self.exclude(voucher__usage="Multi-use").filter(
            voucher__num_orders__gt=0
        )

    def expired(self, now=None):
        now = now or timezone.now()
        return self._unused().filter(voucher__end_datetime__lte=now)


class MemberCoupon(models.Model):
    """An Oscar voucher that belongs to one member.

    Oscar records its use (``VoucherApplication``, ``num_orders``); the ``key``
    makes issuing idempotent (``welcome:<design>:<member>``,
    ``birthday:<design>:<member>:<year>``, ``staff:<uuid>``…).
    """

    voucher = models.OneToOneField(
        "voucher.Voucher",
        on_delete=models.CASCADE,
        related_name="loyalty_coupon",
        verbose_name=_("voucher"),
    )
    member = models.ForeignKey(
        Member,
        on_delete=models.PROTECT,
        related_name="coupons",
        verbose_name=_("member"),
        db_index=False,  # loyalty_coupon_member starts with the member
    )
    design = models.ForeignKey(
        CouponDesign,
        on_delete=models.PROTECT,
        related_name="coupons",
        verbose_name=_("design"),
    )
    key = models.CharField(_("idempotency key"), max_length=200)
    issued_at = models.DateTimeField(_("issued"), default=timezone.now)
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    actor_id = models.BigIntegerField(_("acting user id"), null=True, blank=True)
    actor_name = models.CharField(_("acting user"), max_length=255, blank=True)
    points_cost = models.BigIntegerField(_("points paid"), default=0)
    campaign = models.ForeignKey(
        "oscar_loyalty.Campaign",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="coupons",
        verbose_name=_("campaign"),
    )

    objects = MemberCouponQuerySet.as_manager()

    class Meta:
        verbose_name = _("member coupon")
        verbose_name_plural = _("member coupons")
        ordering = ["-issued_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["key"], name="loyalty_coupon_key_unique"),
            models.CheckConstraint(
                condition=Q(points_cost__gte=0),
                name="loyalty_coupon_points_cost_gte_0",
            ),
        ]
        indexes = [
            models.Index(fields=["member", "-issued_at"], name="loyalty_coupon_member"),
        ]

    def __str__(self):
        return f"{self.member}: {self.design}"

    def state(self, now=None):
        """ "usable", "used", "expired" or "scheduled" (not started yet)."""
        now = now or timezone.now()
        voucher = self.voucher
        if voucher.usage != "Multi-use" and voucher.num_orders > 0:
            return "used"
        if voucher.end_datetime <= now:
            return "expired"
        if voucher.start_datetime > now:
            return "scheduled"
        return "usable"


class GatedValueCondition:
    """For condition proxies that let through only the baskets :meth:`admits`
    accepts and then behave as Oscar's value condition (their range, their value
    to spend): the shared half of the coupon and campaign conditions."""

    def admits(self, offer, basket):
        raise NotImplementedError

    @staticmethod
    def _value_condition():
        from oscar.core.loading import get_class

        return get_class("offer.conditions", "ValueCondition")

    def is_satisfied(self, offer, basket):
        from .offer_cache import prime

        prime(offer, basket, condition=self)
        if not self.admits(offer, basket):
            return False
        return self._value_condition().is_satisfied(self, offer, basket)

    def is_partially_satisfied(self, offer, basket):
        """Spending towards the value (for Oscar's upsell message); never when
        there is no value to reach."""
        from .offer_cache import prime

        if not self.value:
            return False
        prime(offer, basket, condition=self)
        if not self.admits(offer, basket):
            return False
        return self._value_condition().is_partially_satisfied(self, offer, basket)

    def get_upsell_message(self, offer, basket):
        return self._value_condition().get_upsell_message(self, offer, basket)

    def _get_value_of_matches(self, offer, basket):
        return self._value_condition()._get_value_of_matches(self, offer, basket)

    def consume_items(self, offer, basket, affected_lines):
        return self._value_condition().consume_items(
            self, offer, basket, affected_lines
        )


class MemberCouponCondition(GatedValueCondition, Condition):
    """Satisfied only for the coupon's own member, spending the design's minimum.

    The voucher's owner is looked up once per basket for all its vouchers. A
    voucher that is not a member coupon, another member's coupon, a guest's basket
    or (for a tier design) a member below the tier never satisfy it; otherwise it
    behaves as Oscar's value condition over all products with the minimum spend as
    its value.
    """

    class Meta:
        proxy = True
        verbose_name = _("Member coupon condition")
        verbose_name_plural = _("Member coupon conditions")

    @property
    def name(self):
        return str(_("The coupon's own member"))  # Oscar's offer forms need text

    @property
    def description(self):
        return self.name

    def admits(self, offer, basket):
        from .coupons import coupon_usable_in

        return coupon_usable_in(offer.get_voucher(), basket)

    def is_partially_satisfied(self, offer, basket):
        return False  # a coupon below its minimum is refused when entered


class AttemptCounter(models.Model):
    """How often a user or an address tried voucher codes that do not exist for
    them, per time window (throttling guessers). Updated atomically in SQL."""

    key = models.CharField(_("key"), max_length=200)
    window_start = models.DateTimeField(_("window start"))
    count = models.PositiveIntegerField(_("attempts"), default=0)

    class Meta:
        verbose_name = _("attempt counter")
        verbose_name_plural = _("attempt counters")
        constraints = [
            models.UniqueConstraint(
                fields=["key", "window_start"], name="loyalty_attempt_key_window"
            ),
        ]

    def __str__(self):
        return f"{self.key} @ {self.window_start:%Y-%m-%d %H:%M}: {self.count}"


class Reward(models.Model):
    """An item of the rewards catalogue: a coupon (money off, percentage, free
    shipping or a free product, per its :class:`CouponDesign`) bought with points.

    Redeeming (:mod:`oscar_loyalty.services.rewards`) spends the points and issues
    the coupon in one transaction; ``stock`` (empty: unlimited) and the per-member
    limit are checked under locks.
    """

    name = models.CharField(_("name"), max_length=128)
    description = models.TextField(_("description"), blank=True)
    design = models.ForeignKey(
        CouponDesign,
        on_delete=models.PROTECT,
        related_name="rewards",
        verbose_name=_("coupon design"),
        limit_choices_to={"purpose": CouponDesign.Purpose.REWARD},
        help_text=_("What the member receives: a coupon of this design."),
    )
    points_price = models.PositiveIntegerField(_("price in points"))
    stock = models.PositiveIntegerField(
        _("stock"), null=True, blank=True, help_text=_("Empty: unlimited.")
    )
    tiers = models.ManyToManyField(
        Tier,
        blank=True,
        related_name="rewards",
        verbose_name=_("tiers that may redeem"),
        help_text=_("None chosen: every member."),
    )
    per_member_limit = models.PositiveIntegerField(
        _("limit per member"), null=True, blank=True, help_text=_("Empty: no limit.")
    )
    starts_at = models.DateTimeField(_("available from"), null=True, blank=True)
    ends_at = models.DateTimeField(_("available until"), null=True, blank=True)
    is_active = models.BooleanField(_("active"), default=True)
    refund_unused = models.BooleanField(
        _("points back if unused"),
        default=False,
        help_text=_("Give the points back when the coupon expires unused."),
    )
    position = models.PositiveSmallIntegerField(_("position"), default=0)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("reward")
        verbose_name_plural = _("rewards")
        ordering = ["position", "points_price", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(points_price__gt=0), name="loyalty_reward_price_gt_0"
            ),
            models.CheckConstraint(
                condition=Q(per_member_limit__isnull=True) | Q(per_member_limit__gt=0),
                name="loyalty_reward_limit_gt_0",
            ),
            models.CheckConstraint(
                condition=Q(starts_at__isnull=True)
                | Q(ends_at__isnull=True)
                | Q(ends_at__gt=F("starts_at")),
                name="loyalty_reward_ends_after_start",
            ),
        ]

    def __str__(self):
        return self.name


class RewardRedemption(models.Model):
    """A member's redemption of a reward: the points spent and the coupon issued."""

    reward = models.ForeignKey(
        Reward,
        on_delete=models.PROTECT,
        related_name="redemptions",
        verbose_name=_("reward"),
    )
    member = models.ForeignKey(
        Member,
        on_delete=models.PROTECT,
        related_name="reward_redemptions",
        verbose_name=_("member"),
        db_index=False,  # loyalty_redemption_member starts with the member
    )
    coupon = models.OneToOneField(
        MemberCoupon,
        on_delete=models.SET_NULL,  # a voucher deleted in Oscar's dashboard
        null=True,
        related_name="redemption",
        verbose_name=_("coupon"),
    )
    points = models.BigIntegerField(_("points"))
    key = models.CharField(_("idempotency key"), max_length=200)
    created_at = models.DateTimeField(_("redeemed"), default=timezone.now)
    refunded_at = models.DateTimeField(_("points returned"), null=True, blank=True)

    class Meta:
        verbose_name = _("reward redemption")
        verbose_name_plural = _("reward redemptions")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["key"], name="loyalty_redemption_key"),
            models.CheckConstraint(
                condition=Q(points__gt=0), name="loyalty_redemption_points_gt_0"
            ),
        ]
        indexes = [
            models.Index(fields=["member", "reward"], name="loyalty_redemption_member"),
            models.Index(
                fields=["created_at"],
                name="loyalty_redemption_refundable",
                condition=Q(refunded_at__isnull=True),
            ),
        ]

    def __str__(self):
        return f"{self.member}: {self.reward}"


class Campaign(models.Model):
    """A time-boxed promotion for an audience: members of its tiers (none
    chosen: every tier) who are in one of its segments (none chosen: any).

    Built on Oscar offers (site offers with a :class:`CampaignCondition`, kept in
    step by :mod:`oscar_loyalty.campaigns` when the campaign is saved):

    * ``points``: bonus points, ×``multiplier`` on the products of ``range`` (all
      when empty) — an earn rule for the audience, and an offer whose deferred
      benefit shows the bonus in the basket and records the order;
    * ``discount``: a member-day discount, ``discount_percent`` off ``range``;
    * ``spend_save``: spend-X-save-Y steps (:class:`CampaignStep`), the highest step
      the basket reaches applies.

    A campaign may also hand out a coupon (``coupon_design``) to its audience when
    it starts. :class:`CampaignOrder` rows record the orders it touched, for its
    report.
    """

    class Kind(models.TextChoices):
        POINTS = "points", _("Bonus points")
        DISCOUNT = "discount", _("Member-day discount")
        SPEND_SAVE = "spend_save", _("Spend X, save Y")

    name = models.CharField(_("name"), max_length=100)
    description = models.TextField(_("description"), blank=True)
    kind = models.CharField(_("kind"), max_length=12, choices=Kind.choices)
    starts_at = models.DateTimeField(_("starts"))
    ends_at = models.DateTimeField(_("ends"))
    tiers = models.ManyToManyField(
        Tier,
        blank=True,
        related_name="campaigns",
        verbose_name=_("audience tiers"),
        help_text=_("None chosen: every member."),
    )
    range = models.ForeignKey(
        "offer.Range",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("products"),
        help_text=_("An Oscar range, e.g. a category; empty: all products."),
    )
    segments = models.JSONField(
        _("audience segments"),
        default=list,
        blank=True,
        help_text=_(
            "Only members in one of these segments of the newest scoring run "
            "(members who agreed to profiling); none chosen: any member."
        ),
    )
    multiplier = models.DecimalField(
        _("points multiplier"),
        max_digits=5,
        decimal_places=2,
        default=2,
        help_text=_("For bonus points: 2 is double points."),
    )
    discount_percent = models.DecimalField(
        _("discount (%)"), max_digits=5, decimal_places=2, default=0
    )
    coupon_design = models.ForeignKey(
        CouponDesign,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="campaigns",
        verbose_name=_("coupon to hand out"),
        help_text=_("Issued once to each member of the audience when it starts."),
    )
    is_active = models.BooleanField(_("active"), default=True)
    offer = models.OneToOneField(
        "offer.ConditionalOffer",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="loyalty_campaign",
        verbose_name=_("offer"),
    )
    earn_rule = models.OneToOneField(
        EarnRule,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        editable=False,
        related_name="campaign",
        verbose_name=_("earn rule"),
    )
    coupons_issued_at = models.DateTimeField(
        _("coupons handed out"), null=True, blank=True, editable=False
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")
        ordering = ["-starts_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(ends_at__gt=F("starts_at")),
                name="loyalty_campaign_ends_after_start",
            ),
            models.CheckConstraint(
                condition=Q(multiplier__gt=0), name="loyalty_campaign_multiplier_gt_0"
            ),
            models.CheckConstraint(
                condition=Q(discount_percent__gte=0) & Q(discount_percent__lte=100),
                name="loyalty_campaign_discount_0_100",
            ),
        ]

    def __str__(self):
        return self.name

    @property
    def segment_labels(self):
        names = dict(SEGMENT_CHOICES)
        return [names[code] for code in self.segments if code in names]


class CampaignStep(models.Model):
    """One step of a spend-X-save-Y campaign: spend ``threshold``, save ``amount``."""

    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="steps"
    )
    threshold = models.DecimalField(_("spend"), max_digits=12, decimal_places=2)
    amount = models.DecimalField(_("save"), max_digits=12, decimal_places=2)

    class Meta:
        verbose_name = _("campaign step")
        verbose_name_plural = _("campaign steps")
        ordering = ["threshold"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "threshold"], name="loyalty_campaign_step_unique"
            ),
            models.CheckConstraint(
                condition=Q(amount__gt=0) & Q(threshold__gt=F("amount")),
                name="loyalty_campaign_step_saves_less_than_spent",
            ),
        ]

    def __str__(self):
        return f"{self.threshold} → {self.amount}"


class CampaignOrder(models.Model):
    """An order a campaign's offer applied to, for the campaign's report."""

    campaign = models.ForeignKey(
        Campaign,
        on_delete=models.CASCADE,
        related_name="orders",
        # Written inside Oscar's order transaction: a campaign deleted meanwhile
        # must not fail the order at commit (the rows go with it otherwise).
        db_constraint=False,
    )
    order_number = models.CharField(_("order number"), max_length=128)
    user_id = models.BigIntegerField(_("customer"), null=True, blank=True)
    placed_at = models.DateTimeField(_("placed"), default=timezone.now)
    revenue = models.DecimalField(
        _("revenue"), max_digits=14, decimal_places=2, default=0
    )
    discount = models.DecimalField(
        _("discount"), max_digits=14, decimal_places=2, default=0
    )

    class Meta:
        verbose_name = _("campaign order")
        verbose_name_plural = _("campaign orders")
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "order_number"], name="loyalty_campaign_order"
            ),
        ]

    def __str__(self):
        return f"{self.campaign}: {self.order_number}"


class CampaignCondition(GatedValueCondition, Condition):
    """Satisfied for a member of the campaign's audience whose basket holds a
    product of the campaign's range (for spend-X-save-Y: spending the first
    step's amount on it)."""

    class Meta:
        proxy = True
        verbose_name = _("Campaign condition")
        verbose_name_plural = _("Campaign conditions")

    @property
    def name(self):
        return str(
            _("A member of the campaign's audience")
        )  # Oscar's offer forms need text

    @property
    def description(self):
        return self.name

    def admits(self, offer, basket):
        from .campaigns import in_audience

        return in_audience(offer, basket)


class CampaignBenefit(Benefit):
    """The campaign's benefit: its percentage off, its best spend-X-save-Y step,
    or (bonus points) nothing off but a note in the basket; every kind records
    the order for the campaign's report once it is placed."""

    class Meta:
        proxy = True
        verbose_name = _("Campaign benefit")
        verbose_name_plural = _("Campaign benefits")

    @property
    def name(self):
        return str(_("The campaign's benefit"))  # Oscar's offer forms need text

    @property
    def description(self):
        return self.name

    def apply(self, basket, condition, offer, **kwargs):
        from .campaigns import apply_benefit

        return apply_benefit(self, basket, condition, offer, **kwargs)

    def apply_deferred(self, basket, order, application):
        from .campaigns import record_order

        return record_order(basket, order, application)


class SegmentCondition(GatedValueCondition, Condition):
    """ "Member in segment X": satisfied for a signed-in member whose current
    segments (the newest scoring run) include the condition's, spending its
    value on its range. One such condition exists per segment (made after
    migrating, :mod:`oscar_loyalty.segment_offers`); owners pick them as a
    custom condition in Oscar's offer wizard."""

    class Meta:
        proxy = True
        verbose_name = _("Segment condition")
        verbose_name_plural = _("Segment conditions")

    @property
    def segment(self):
        from .segment_offers import segment_of

        return segment_of(self.pk)

    @property
    def name(self):
        # Text, not a lazy string: Oscar's offer forms call str() on it.
        return str(
            format_lazy(
                "{} {}",
                _("Member in segment:"),
                dict(SEGMENT_CHOICES).get(self.segment),
            )
        )

    @property
    def description(self):
        return self.name

    def admits(self, offer, basket):
        from .segment_offers import basket_in_segment

        return basket_in_segment(basket, self.segment)


class ConditionSegment(models.Model):
    """Which segment a :class:`SegmentCondition` stands for."""

    condition = models.OneToOneField(
        "offer.Condition",
        on_delete=models.CASCADE,
        related_name="loyalty_segment",
        verbose_name=_("condition"),
    )
    segment = models.CharField(
        _("segment"), max_length=24, unique=True, choices=SEGMENT_CHOICES
    )

    class Meta:
        verbose_name = _("segment condition")
        verbose_name_plural = _("segment conditions")

    def __str__(self):
        return self.segment


class ActionRule(models.Model):
    """Points for something a member does, with a cap per period."""

    class Action(models.TextChoices):
        SIGNUP = "signup", _("Signing up")
        CHECKIN = "checkin", _("Daily check-in")
        REVIEW = "review", _("An approved product review")
        BIRTHDAY = "birthday", _("Birthday")
        PROFILE = "profile", _("Completing the profile")
        REFERRER = "referrer", _("Referring a friend (on their first order)")
        REFERRED = "referred", _("Joining through a referral (on the first order)")
        STORY = "story", _("A community story published after moderation")

    class Period(models.TextChoices):
        DAY = "day", _("per day")
        WEEK = "week", _("per week")
        MONTH = "month", _("per month")
        YEAR = "year", _("per year")
        EVER = "ever", _("in total")

    action = models.CharField(
        _("action"), max_length=12, choices=Action.choices, unique=True
    )
    points = models.PositiveIntegerField(_("points"))
    cap = models.PositiveIntegerField(
        _("cap"), null=True, blank=True, help_text=_("Empty: no cap.")
    )
    cap_period = models.CharField(
        _("cap period"), max_length=8, choices=Period.choices, default=Period.DAY
    )
    is_active = models.BooleanField(_("active"), default=True)

    class Meta:
        verbose_name = _("action reward")
        verbose_name_plural = _("action rewards")
        ordering = ["action"]
        constraints = [
            models.CheckConstraint(
                condition=Q(points__gt=0), name="loyalty_action_points_gt_0"
            ),
            models.CheckConstraint(
                condition=Q(cap__isnull=True) | Q(cap__gt=0),
                name="loyalty_action_cap_gt_0",
            ),
        ]

    def __str__(self):
        return self.get_action_display()


class ActionAward(models.Model):
    """Points a member got for an action; its ``key`` (also its posting's) makes
    each action count once (``checkin:<member>:<date>``, ``review:<review>``…)."""

    member = models.ForeignKey(
        Member,
        on_delete=models.PROTECT,
        related_name="action_awards",
        verbose_name=_("member"),
        db_index=False,  # loyalty_action_member starts with the member
    )
    action = models.CharField(
        _("action"), max_length=12, choices=ActionRule.Action.choices
    )
    key = models.CharField(_("idempotency key"), max_length=200)
    points = models.BigIntegerField(_("points"))
    object_id = models.BigIntegerField(_("object"), null=True, blank=True)
    created_at = models.DateTimeField(_("awarded"), default=timezone.now)
    reversed_at = models.DateTimeField(_("reversed"), null=True, blank=True)

    class Meta:
        verbose_name = _("action award")
        verbose_name_plural = _("action awards")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["key"], name="loyalty_action_award_key"),
        ]
        indexes = [
            models.Index(
                fields=["member", "action", "created_at"], name="loyalty_action_member"
            ),
        ]

    def __str__(self):
        return f"{self.member}: {self.get_action_display()}"


class Referral(models.Model):
    """A new member who joined through another member's link or code.

    Both are rewarded (action rewards ``referrer``/``referred``) when the new
    member's first order is confirmed, unless the referral is refused as abuse:
    the same e-mail, phone or address as the referrer, the referrer's device
    cookie, a loop (the referrer was referred by the new member), or a repeat
    account.
    """

    class Status(models.TextChoices):
        PENDING = "pending", _("Waiting for the first order")
        REWARDED = "rewarded", _("Rewarded")
        REFUSED = "refused", _("Refused")

    referrer = models.ForeignKey(
        Member,
        on_delete=models.PROTECT,
        related_name="referrals_made",
        verbose_name=_("referrer"),
    )
    referred = models.OneToOneField(
        Member,
        on_delete=models.PROTECT,
        related_name="referred_by",
        verbose_name=_("new member"),
    )
    status = models.CharField(
        _("status"), max_length=10, choices=Status.choices, default=Status.PENDING
    )
    reason = models.CharField(_("reason"), max_length=255, blank=True)
    device = models.CharField(_("device cookie"), max_length=64, blank=True)
    order_number = models.CharField(_("first order"), max_length=128, blank=True)
    created_at = models.DateTimeField(_("joined"), default=timezone.now)
    decided_at = models.DateTimeField(_("decided"), null=True, blank=True)

    class Meta:
        verbose_name = _("referral")
        verbose_name_plural = _("referrals")
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(referrer=F("referred")), name="loyalty_referral_not_self"
            ),
        ]

    def __str__(self):
        return f"{self.referrer} → {self.referred}"


class MemberDevice(models.Model):
    """A browser (the plugin's device cookie) a member signed in with: referrals
    from the referrer's own devices earn nothing."""

    member = models.ForeignKey(
        Member,
        on_delete=models.CASCADE,
        related_name="devices",
        verbose_name=_("member"),
        db_index=False,  # the unique constraint starts with the member
    )
    device = models.CharField(_("device cookie"), max_length=64, db_index=True)
    seen_at = models.DateTimeField(_("last seen"), default=timezone.now)

    class Meta:
        verbose_name = _("member device")
        verbose_name_plural = _("member devices")
        constraints = [
            models.UniqueConstraint(
                fields=["member", "device"], name="loyalty_member_device"
            ),
        ]

    def __str__(self):
        return f"{self.member}: {self.device[:8]}…"


class ExportRecord(models.Model):
    """Who downloaded which of the programme's data, when, with which filters:
    personal data leaves the shop only on record (and with ``export_data``)."""

    class Kind(models.TextChoices):
        AUDIT_LOG = "audit_log", _("Staff audit log")
        MEMBERS = "members", _("Members")
        LEDGER = "ledger", _("Points ledger")
        COUPONS = "coupons", _("Issued coupons")
        CAMPAIGN = "campaign", _("Campaign results")
        WINBACK = "winback", _("Win-back picks")
        ANALYTICS = "analytics", _("Analytics tables")

    class Format(models.TextChoices):
        CSV = "csv", "CSV"
        XLSX = "xlsx", "XLSX"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        verbose_name=_("staff user"),
    )
    user_name = models.CharField(_("staff user's name"), max_length=254)
    kind = models.CharField(_("data"), max_length=32, choices=Kind.choices)
    format = models.CharField(_("format"), max_length=8, choices=Format.choices)
    filters = models.JSONField(_("filters"), default=dict, blank=True)
    rows = models.PositiveIntegerField(_("rows"), default=0)
    created_at = models.DateTimeField(_("exported at"), default=timezone.now)

    class Meta:
        verbose_name = _("export")
        verbose_name_plural = _("exports")
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["-created_at"], name="loyalty_export_recent")]
        permissions = [
            ("view_audit_log", _("Can view the loyalty staff audit log")),
            ("export_data", _("Can export loyalty data (CSV, XLSX)")),
            ("view_analytics", _("Can view the loyalty programme's analytics")),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} ({self.format}) by {self.user_name}"


class MemberNote(models.Model):
    """Something staff want colleagues to know about a member ("prefers calls in
    the morning"), with who wrote it and when; staff only."""

    member = models.ForeignKey(
        Member, on_delete=models.CASCADE, related_name="notes", verbose_name=_("member")
    )
    text = models.TextField(_("note"), max_length=2000)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        verbose_name=_("written by"),
    )
    author_name = models.CharField(_("written by"), max_length=255)
    key = models.CharField(_("form key"), max_length=64, unique=True)
    created_at = models.DateTimeField(_("written"), default=timezone.now)

    class Meta:
        verbose_name = _("member note")
        verbose_name_plural = _("member notes")
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.member}: {self.text[:40]}"


class ConsentChange(models.Model):
    """One change of a member's consent to one purpose: the programme's record of
    who agreed to what, when and where (sign-up form, account page, staff, import).

    Rows are only ever added; the member's current answers are on ``Member``
    (``consent_email``, ``consent_sms``, ``consent_profiling``,
    ``expiry_reminders``), written in the same transaction.
    """

    class Purpose(models.TextChoices):
        EMAIL = "email", _("E-mails about my points, tier and offers")
        SMS = "sms", _("Text messages (SMS) about my points and offers")
        PROFILING = (
            "profiling",
            _("Use my orders and activity to tailor offers to me (profiling)"),
        )
        REMINDERS = "reminders", _("E-mail me before my points expire")

    class Source(models.TextChoices):
        SIGNUP = "signup", _("Sign-up form")
        ACCOUNT = "account", _("Account page")
        STAFF = "staff", _("Staff, on the member's request")
        IMPORT = "import", _("Members import")

    member = models.ForeignKey(
        Member,
        on_delete=models.CASCADE,
        related_name="consent_changes",
        verbose_name=_("member"),
    )
    purpose = models.CharField(_("purpose"), max_length=16, choices=Purpose.choices)
    granted = models.BooleanField(_("consent given"))
    source = models.CharField(_("source"), max_length=16, choices=Source.choices)
    actor_id = models.BigIntegerField(_("acting user id"), null=True, blank=True)
    actor_name = models.CharField(_("acting user"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("changed"), default=timezone.now)

    class Meta:
        verbose_name = _("consent change")
        verbose_name_plural = _("consent changes")
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(
                fields=["member", "-created_at"], name="loyalty_consent_member"
            )
        ]

    def __str__(self):
        state = _("given") if self.granted else _("withdrawn")
        return f"{self.member}: {self.get_purpose_display()} {state}"


class MemberImport(models.Model):
    """One members file uploaded in the dashboard: checked (a dry run), then
    imported, all or nothing. The file is kept only until it is imported."""

    class Status(models.TextChoices):
        CHECKING = "checking", _("Being checked")
        CHECKED = "checked", _("Checked")
        IMPORTING = "importing", _("Being imported")
        IMPORTED = "imported", _("Imported")
        FAILED = "failed", _("Not imported")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        related_name="+",
        verbose_name=_("staff user"),
    )
    user_name = models.CharField(_("staff user's name"), max_length=254)
    file_name = models.CharField(_("file"), max_length=255)
    file_format = models.CharField(_("format"), max_length=8)
    content = models.BinaryField(_("content"), blank=True, null=True, editable=False)
    size = models.PositiveIntegerField(_("size in bytes"), default=0)
    sha256 = models.CharField(_("SHA-256"), max_length=64)
    status = models.CharField(
        _("status"), max_length=12, choices=Status.choices, default=Status.CHECKING
    )
    #: The uploader's language: the reports' messages are written in it.
    language = models.CharField(_("language"), max_length=16, blank=True, default="")
    check_report = models.JSONField(_("check"), default=dict, blank=True)
    import_report = models.JSONField(_("import"), default=dict, blank=True)
    created_at = models.DateTimeField(_("uploaded"), default=timezone.now)
    imported_at = models.DateTimeField(_("imported"), null=True, blank=True)

    class Meta:
        verbose_name = _("members import")
        verbose_name_plural = _("members imports")
        ordering = ["-created_at", "-id"]
        permissions = [("import_members", _("Can import members"))]

    def __str__(self):
        return f"{self.file_name} ({self.get_status_display()})"


class ProgrammeSetting(models.Model):
    """A programme setting the owner changed in the dashboard (earn rate,
    redemption, expiry, confirming, tiers, …): it overrides the shop's
    ``OSCAR_LOYALTY_<name>`` Django setting until the owner sets it back.
    Read through :data:`oscar_loyalty.conf.loyalty_settings`; one row per
    setting, so each change is its own audit entry."""

    name = models.CharField(_("setting"), max_length=64, unique=True)
    value = models.JSONField(_("value"))
    changed_at = models.DateTimeField(_("changed"), auto_now=True)
    changed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("changed by"),
    )

    class Meta:
        verbose_name = _("programme setting")
        verbose_name_plural = _("programme settings")
        ordering = ["name"]

    def __str__(self):
        return self.name


class MemberScore(models.Model):
    """A member's segments and scores as one scoring run found them.

    The rows of the newest :class:`ScoringRun` are the members' current
    segments; older runs are the history behind trends and "segment as of a
    date". Only members who agreed to profiling are scored; withdrawing that
    consent deletes their rows. Written by :mod:`oscar_loyalty.scoring` only,
    a whole run's rows by one ``INSERT … SELECT``.

    A run writes a row per scored member (365 M rows a year at a million
    members, before thinning), so a row carries only what is read back: the
    key is the run and the member (one index, no surrogate id or sequence),
    and the measures behind the scores stay in the run's own computation.
    """

    pk = models.CompositePrimaryKey("scored_at", "member")
    scored_at = models.DateTimeField(_("run"))
    member = models.ForeignKey(
        Member,
        on_delete=models.CASCADE,
        related_name="scores",
        verbose_name=_("member"),
        # No per-row foreign-key check (members are never deleted, only
        # anonymised) and no index of its own: the key's index serves a run's
        # rows and a member's row in a run.
        db_constraint=False,
        db_index=False,
    )
    activity_segment = models.CharField(
        _("activity"), max_length=12, choices=ACTIVITY_SEGMENTS
    )
    value_segment = models.CharField(_("value"), max_length=8, choices=VALUE_SEGMENTS)
    recency_score = models.PositiveSmallIntegerField(_("recency (1-5)"), null=True)
    frequency_score = models.PositiveSmallIntegerField(_("frequency (1-5)"), null=True)
    monetary_score = models.PositiveSmallIntegerField(_("monetary (1-5)"), null=True)
    rfm_segment = models.CharField(
        _("RFM segment"), max_length=12, db_default="", choices=RFM_SEGMENTS
    )
    churn_risk = models.PositiveSmallIntegerField(_("churn risk"), null=True)

    class Meta:
        verbose_name = _("member score")
        verbose_name_plural = _("member scores")
        ordering = ["-scored_at", "member_id"]

    def __str__(self):
        return f"{self.member_id} @ {self.scored_at:%Y-%m-%d}"


class ScoringRun(models.Model):
    """One nightly (or on-demand) scoring run, written with its rows in one
    transaction: the newest is the members' current segments. ``summary``
    keeps its members per segment for the trend charts."""

    scored_at = models.DateTimeField(_("run"), unique=True)
    task_id = models.CharField(
        _("task"), max_length=255, null=True, blank=True, unique=True, editable=False
    )
    members = models.PositiveIntegerField(_("members scored"), default=0)
    rows_kept = models.BooleanField(
        _("members' rows kept"),
        default=True,
        help_text=_(
            "Older runs keep only their summary, except the first of each month "
            "(OSCAR_LOYALTY_SCORES_DAILY_DAYS)."
        ),
    )
    summary = models.JSONField(
        _("summary"),
        default=dict,
        encoder=DjangoJSONEncoder,
        help_text=_("Members per segment, and per tenth of churn risk."),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("scoring run")
        verbose_name_plural = _("scoring runs")
        ordering = ["-scored_at"]

    def __str__(self):
        return f"{self.scored_at:%Y-%m-%d %H:%M}"


class WinBackRule(models.Model):
    """What the shop does for a member whose churn risk reaches ``threshold``:
    a coupon, extra points for some days, or tier protection, at most once per
    member every ``period_days``. ``holdout_percent`` of the members picked get
    nothing (a control group), so the report can tell what the action changed.
    """

    class Action(models.TextChoices):
        COUPON = "coupon", _("Send a win-back coupon")
        POINTS = "points", _("Extra points for some days")
        PROTECT = "protect", _("Protect their tier for some days")

    name = models.CharField(_("name"), max_length=100)
    is_active = models.BooleanField(_("active"), default=True)
    threshold = models.PositiveSmallIntegerField(
        _("churn risk at least"),
        default=70,
        help_text=_("Members whose churn risk (0-100) reaches this are picked."),
    )
    action = models.CharField(_("action"), max_length=8, choices=Action.choices)
    coupon_design = models.ForeignKey(
        CouponDesign,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("coupon"),
        help_text=_("For a coupon: a coupon design for win-back."),
    )
    multiplier = models.DecimalField(
        _("points multiplier"),
        max_digits=5,
        decimal_places=2,
        default=2,
        help_text=_("For extra points: 2 is double points."),
    )
    days = models.PositiveSmallIntegerField(
        _("days"),
        default=14,
        help_text=_("How long extra points or tier protection last."),
    )
    period_days = models.PositiveSmallIntegerField(
        _("at most once every (days)"),
        default=180,
        help_text=_(
            "A member picked by any win-back rule within this many days is not "
            "picked by this one."
        ),
    )
    holdout_percent = models.PositiveSmallIntegerField(
        _("control group (%)"),
        default=10,
        help_text=_(
            "This share of the members picked get nothing, to compare how many "
            "come back without the offer (0: everyone gets it)."
        ),
    )
    priority = models.PositiveSmallIntegerField(
        _("priority"),
        default=0,
        help_text=_(
            "A member picked by several rules on one night gets the "
            "highest priority's (then the highest threshold's)."
        ),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        verbose_name = _("win-back rule")
        verbose_name_plural = _("win-back rules")
        ordering = ["-priority", "-threshold", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(threshold__gte=1) & Q(threshold__lte=100),
                name="loyalty_winback_threshold_1_100",
            ),
            models.CheckConstraint(
                condition=Q(multiplier__gt=1), name="loyalty_winback_multiplier_gt_1"
            ),
            models.CheckConstraint(
                condition=Q(days__gte=1) & Q(period_days__gte=1),
                name="loyalty_winback_days_gte_1",
            ),
            models.CheckConstraint(
                condition=Q(holdout_percent__lte=50),
                name="loyalty_winback_holdout_lte_50",
            ),
            models.CheckConstraint(
                condition=~Q(action="coupon") | Q(coupon_design__isnull=False),
                name="loyalty_winback_coupon_has_design",
            ),
        ]

    def __str__(self):
        return self.name


class WinBack(models.Model):
    """A member picked by a win-back rule on a scoring run, and what they got
    (nothing when ``held_out``: the control group). Whether and when they came
    back is read from their orders after ``started_at``."""

    rule = models.ForeignKey(
        WinBackRule,
        on_delete=models.CASCADE,
        related_name="winbacks",
        verbose_name=_("rule"),
    )
    member = models.ForeignKey(
        Member,
        on_delete=models.CASCADE,
        related_name="winbacks",
        verbose_name=_("member"),
    )
    started_at = models.DateTimeField(_("started"))
    churn_risk = models.PositiveSmallIntegerField(_("churn risk"))
    action = models.CharField(
        _("action"), max_length=8, choices=WinBackRule.Action.choices
    )
    held_out = models.BooleanField(_("control group"), default=False)
    until = models.DateTimeField(_("until"), null=True, blank=True)
    coupon = models.ForeignKey(
        "oscar_loyalty.MemberCoupon",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        verbose_name=_("coupon"),
    )

    class Meta:
        verbose_name = _("win-back")
        verbose_name_plural = _("win-backs")
        ordering = ["-started_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["member", "started_at"], name="loyalty_winback_one_per_run"
            ),
        ]
        indexes = [
            models.Index(fields=["rule", "started_at"], name="loyalty_winback_rule"),
        ]

    def __str__(self):
        return f"{self.rule}: {self.member}"
