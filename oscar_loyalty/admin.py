"""Read-only Django admin views of the ledger: every write goes through services."""

from django.contrib import admin

from .models import Entry, Hold, Lot, Member, OrderActivity, Posting, Tier, TierChange


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
    search_fields = ["number", "user__email", "user__username"]
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
