from django.urls import path
from django.utils.translation import gettext_lazy as _
from oscar.core.application import OscarDashboardConfig

#: Every screen needs a staff account; most need a model permission as well.
MEMBER_VIEWERS = ["is_staff", "oscar_loyalty.view_member"]


class LoyaltyDashboardConfig(OscarDashboardConfig):
    """The owner's loyalty screens inside Oscar's dashboard (staff only).

    URL names are prefixed ``loyalty-`` because Oscar's navigation looks dashboard URL
    names up across every dashboard config. Permissions are declared here, per URL
    name, so Oscar both guards the view (login for visitors, 403 for staff without
    the permission) and hides the menu entries a user cannot open.
    """

    name = "oscar_loyalty.dashboard"
    label = "loyalty_dashboard"
    namespace = "loyalty_dashboard"
    verbose_name = _("Loyalty dashboard")
    default_permissions = ["is_staff"]
    permissions_map = {
        "loyalty-member-list": MEMBER_VIEWERS,
        "loyalty-member-detail": MEMBER_VIEWERS,
        "loyalty-member-adjust": MEMBER_VIEWERS + ["oscar_loyalty.adjust_points"],
        "loyalty-member-set-tier": MEMBER_VIEWERS + ["oscar_loyalty.set_tier"],
        "loyalty-liability": MEMBER_VIEWERS,
        # A tuple of lists is "any of": those who may change rules may see them.
        "loyalty-earnrule-list": (
            ["is_staff", "oscar_loyalty.view_earnrule"],
            ["is_staff", "oscar_loyalty.change_earnrule"],
        ),
        "loyalty-earnrule-create": ["is_staff", "oscar_loyalty.add_earnrule"],
        "loyalty-earnrule-update": ["is_staff", "oscar_loyalty.change_earnrule"],
        "loyalty-tier-list": (
            ["is_staff", "oscar_loyalty.view_tier"],
            ["is_staff", "oscar_loyalty.change_tier"],
        ),
        "loyalty-tier-create": ["is_staff", "oscar_loyalty.add_tier"],
        "loyalty-tier-update": ["is_staff", "oscar_loyalty.change_tier"],
    }

    def ready(self):
        from . import views

        self.overview_view = views.ProgrammeOverviewView
        self.member_list_view = views.MemberListView
        self.member_detail_view = views.MemberDetailView
        self.member_adjust_view = views.MemberAdjustView
        self.member_set_tier_view = views.MemberSetTierView
        self.liability_view = views.LiabilityView
        self.earnrule_list_view = views.EarnRuleListView
        self.earnrule_create_view = views.EarnRuleCreateView
        self.earnrule_update_view = views.EarnRuleUpdateView
        self.tier_list_view = views.TierListView
        self.tier_create_view = views.TierCreateView
        self.tier_update_view = views.TierUpdateView

    def get_urls(self):
        urls = [
            path("", self.overview_view.as_view(), name="loyalty-overview"),
            path(
                "members/", self.member_list_view.as_view(), name="loyalty-member-list"
            ),
            path(
                "members/<int:pk>/",
                self.member_detail_view.as_view(),
                name="loyalty-member-detail",
            ),
            path(
                "members/<int:pk>/adjust/",
                self.member_adjust_view.as_view(),
                name="loyalty-member-adjust",
            ),
            path(
                "members/<int:pk>/tier/",
                self.member_set_tier_view.as_view(),
                name="loyalty-member-set-tier",
            ),
            path("liability/", self.liability_view.as_view(), name="loyalty-liability"),
            path(
                "earn-rules/",
                self.earnrule_list_view.as_view(),
                name="loyalty-earnrule-list",
            ),
            path(
                "earn-rules/new/",
                self.earnrule_create_view.as_view(),
                name="loyalty-earnrule-create",
            ),
            path(
                "earn-rules/<int:pk>/",
                self.earnrule_update_view.as_view(),
                name="loyalty-earnrule-update",
            ),
            path("tiers/", self.tier_list_view.as_view(), name="loyalty-tier-list"),
            path(
                "tiers/new/",
                self.tier_create_view.as_view(),
                name="loyalty-tier-create",
            ),
            path(
                "tiers/<int:pk>/",
                self.tier_update_view.as_view(),
                name="loyalty-tier-update",
            ),
        ]
        return self.post_process_urls(urls)
