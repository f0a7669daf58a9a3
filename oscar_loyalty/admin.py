"""Read-only Django admin views for support staff: the ledger and everything the
programme issued or counts. Every write goes through the services and the
Loyalty section of Oscar's dashboard (validated, audited); here nothing can be
added, changed or deleted, whatever a user's permissions."""

from django.contrib import admin

from .models import (
    ActionAward,
    ActionRule,
    Campaign,
    CampaignOrder,
    ConsentChange,
    CouponDesign,
    EarnRule,
    Entry,
    ExportRecord,
    Hold,
    Lot,
    Member,
    MemberCoupon,
    MemberImport,
    MemberNote,
    OrderActivity,
    Posting,
    ProgrammeSetting,
    Referral,
    Reward,
    RewardRedemption,
    ScoringRun,
    Tier,
    TierChange,
)


class ReadOnlyAdmin(admin.ModelAdmin):
    """The ledger is append-only: the admin shows it and changes nothing."""

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(Member)
class MemberAdmin(ReadOnlyAdmin):
    list_display = [
        "number",
        "user",
        "available",
        "held",
        "pending",
        "lifetime_earned",
        "tier",
        "joined_at",
    ]
    search_fields = ["number", "user__email", "user__username", "phone"]
    list_select_related = ["user", "tier"]


@admin.register(Lot)
class LotAdmin(ReadOnlyAdmin):
    list_display = [
        "id",
        "member",
        "source",
        "status",
        "points",
        "remaining",
        "reversed",
        "expires_at",
        "order_number",
    ]
    list_filter = ["status", "source"]
    search_fields = ["member__number", "order_number"]
    list_select_related = ["member"]


class EntryInline(admin.TabularInline):
    model = Entry
    fields = ["lot", "available_change", "pending_change"]
    readonly_fields = fields
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Posting)
class PostingAdmin(ReadOnlyAdmin):
    list_display = [
        "key",
        "kind",
        "member",
        "created_at",
        "order_number",
        "actor_name",
        "reason",
        "shortfall",
    ]
    list_filter = ["kind"]
    search_fields = ["key", "member__number", "order_number"]
    list_select_related = ["member"]
    inlines = [EntryInline]


@admin.register(Hold)
class HoldAdmin(ReadOnlyAdmin):
    list_display = ["id", "member", "basket_id", "points", "status", "expires_at"]
    list_filter = ["status"]
    list_select_related = ["member"]


@admin.register(Tier)
class TierAdmin(ReadOnlyAdmin):
    list_display = [
        "rank",
        "name",
        "code",
        "threshold",
        "points_multiplier",
        "discount_percent",
        "free_shipping",
    ]


@admin.register(TierChange)
class TierChangeAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "member",
        "from_tier",
        "to_tier",
        "kind",
        "qualifying_value",
        "actor_name",
        "reason",
    ]
    list_filter = ["kind", "to_tier"]
    search_fields = ["member__number", "member__user__email"]
    list_select_related = ["member", "from_tier", "to_tier"]


@admin.register(OrderActivity)
class OrderActivityAdmin(ReadOnlyAdmin):
    list_display = [
        "order_number",
        "member",
        "placed_at",
        "spend",
        "refunded",
        "confirmed_at",
        "cancelled_at",
    ]
    search_fields = ["order_number", "member__number"]
    list_select_related = ["member"]


@admin.register(EarnRule)
class EarnRuleAdmin(ReadOnlyAdmin):
    list_display = [
        "name",
        "multiplier",
        "starts_at",
        "ends_at",
        "is_active",
        "version",
    ]
    list_filter = ["is_active"]


@admin.register(CouponDesign)
class CouponDesignAdmin(ReadOnlyAdmin):
    list_display = ["name", "purpose", "benefit_type", "value", "valid_days", "tier"]
    list_filter = ["purpose", "is_active"]


@admin.register(MemberCoupon)
class MemberCouponAdmin(ReadOnlyAdmin):
    list_display = ["issued_at", "member", "design", "voucher", "reason", "actor_name"]
    list_filter = ["design__purpose"]
    search_fields = ["member__number", "member__user__email", "voucher__code"]
    list_select_related = ["member", "design", "voucher"]


@admin.register(Reward)
class RewardAdmin(ReadOnlyAdmin):
    list_display = ["name", "points_price", "stock", "per_member_limit", "is_active"]
    list_filter = ["is_active"]


@admin.register(RewardRedemption)
class RewardRedemptionAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "reward", "member", "points", "refunded_at"]
    search_fields = ["member__number", "member__user__email"]
    list_select_related = ["reward", "member"]


@admin.register(Campaign)
class CampaignAdmin(ReadOnlyAdmin):
    list_display = ["name", "kind", "starts_at", "ends_at", "is_active"]
    list_filter = ["kind", "is_active"]


@admin.register(CampaignOrder)
class CampaignOrderAdmin(ReadOnlyAdmin):
    list_display = ["placed_at", "campaign", "order_number", "revenue", "discount"]
    search_fields = ["order_number"]
    list_select_related = ["campaign"]


@admin.register(ActionRule)
class ActionRuleAdmin(ReadOnlyAdmin):
    list_display = ["action", "points", "cap", "cap_period", "is_active"]


@admin.register(ActionAward)
class ActionAwardAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "member", "action", "points", "reversed_at"]
    list_filter = ["action"]
    search_fields = ["member__number", "member__user__email"]
    list_select_related = ["member"]


@admin.register(Referral)
class ReferralAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "referrer", "referred", "status", "reason"]
    list_filter = ["status"]
    search_fields = ["referrer__number", "referred__number"]
    list_select_related = ["referrer", "referred"]


@admin.register(MemberNote)
class MemberNoteAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "member", "author_name", "text"]
    search_fields = ["member__number", "member__user__email", "text"]
    list_select_related = ["member"]


@admin.register(ExportRecord)
class ExportRecordAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "user_name", "kind", "format", "rows"]
    list_filter = ["kind", "format"]


@admin.register(ConsentChange)
class ConsentChangeAdmin(ReadOnlyAdmin):
    list_display = [
        "created_at",
        "member",
        "purpose",
        "granted",
        "source",
        "actor_name",
    ]
    list_filter = ["purpose", "granted", "source"]
    search_fields = ["member__number", "member__user__email"]
    list_select_related = ["member"]


@admin.register(MemberImport)
class MemberImportAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "file_name", "user_name", "status", "imported_at"]
    list_filter = ["status"]
    search_fields = ["file_name", "user_name"]
    exclude = ["content"]

    def get_queryset(self, request):
        return super().get_queryset(request).defer("content")


@admin.register(ProgrammeSetting)
class ProgrammeSettingAdmin(ReadOnlyAdmin):
    list_display = ["name", "value", "changed_at", "changed_by"]
    list_select_related = ["changed_by"]


@admin.register(ScoringRun)
class ScoringRunAdmin(ReadOnlyAdmin):
    list_display = ["scored_at", "task_id", "created_at"]
