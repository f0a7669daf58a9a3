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
        "loyalty-settings": ["is_staff", "oscar_loyalty.change_programmesetting"],
        "loyalty-analytics": ["is_staff", "oscar_loyalty.view_analytics"],
        "loyalty-member-list": MEMBER_VIEWERS,
        "loyalty-member-detail": MEMBER_VIEWERS,
        "loyalty-member-adjust": MEMBER_VIEWERS + ["oscar_loyalty.adjust_points"],
        "loyalty-member-set-tier": MEMBER_VIEWERS + ["oscar_loyalty.set_tier"],
        "loyalty-member-issue-coupon": MEMBER_VIEWERS + ["oscar_loyalty.issue_coupon"],
        "loyalty-member-note": MEMBER_VIEWERS + ["oscar_loyalty.add_membernote"],
        "loyalty-member-consent": MEMBER_VIEWERS + ["oscar_loyalty.record_consent"],
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
        "loyalty-coupondesign-list": (
            ["is_staff", "oscar_loyalty.view_coupondesign"],
            ["is_staff", "oscar_loyalty.change_coupondesign"],
        ),
        "loyalty-coupondesign-create": ["is_staff", "oscar_loyalty.add_coupondesign"],
        "loyalty-coupondesign-update": [
            "is_staff",
            "oscar_loyalty.change_coupondesign",
        ],
        "loyalty-coupondesign-issue": ["is_staff", "oscar_loyalty.issue_coupon"],
        "loyalty-coupon-list": ["is_staff", "oscar_loyalty.view_membercoupon"],
        "loyalty-reward-list": (
            ["is_staff", "oscar_loyalty.view_reward"],
            ["is_staff", "oscar_loyalty.change_reward"],
        ),
        "loyalty-reward-create": ["is_staff", "oscar_loyalty.add_reward"],
        "loyalty-reward-update": ["is_staff", "oscar_loyalty.change_reward"],
        "loyalty-reward-redemptions": (
            ["is_staff", "oscar_loyalty.view_reward"],
            ["is_staff", "oscar_loyalty.change_reward"],
        ),
        "loyalty-campaign-list": (
            ["is_staff", "oscar_loyalty.view_campaign"],
            ["is_staff", "oscar_loyalty.change_campaign"],
        ),
        "loyalty-campaign-create": ["is_staff", "oscar_loyalty.add_campaign"],
        "loyalty-campaign-update": ["is_staff", "oscar_loyalty.change_campaign"],
        "loyalty-campaign-report": (
            ["is_staff", "oscar_loyalty.view_campaign"],
            ["is_staff", "oscar_loyalty.change_campaign"],
        ),
        "loyalty-actionrule-list": (
            ["is_staff", "oscar_loyalty.view_actionrule"],
            ["is_staff", "oscar_loyalty.change_actionrule"],
        ),
        "loyalty-winbackrule-list": (
            ["is_staff", "oscar_loyalty.view_winbackrule"],
            ["is_staff", "oscar_loyalty.change_winbackrule"],
        ),
        "loyalty-winbackrule-create": ["is_staff", "oscar_loyalty.add_winbackrule"],
        "loyalty-winbackrule-update": ["is_staff", "oscar_loyalty.change_winbackrule"],
        "loyalty-winback-list": MEMBER_VIEWERS + ["oscar_loyalty.view_winback"],
        "loyalty-actionrule-create": ["is_staff", "oscar_loyalty.add_actionrule"],
        "loyalty-actionrule-update": ["is_staff", "oscar_loyalty.change_actionrule"],
        "loyalty-referral-list": ["is_staff", "oscar_loyalty.view_referral"],
        # Downloading it also needs oscar_loyalty.export_data (checked in the view).
        "loyalty-audit-log": ["is_staff", "oscar_loyalty.view_audit_log"],
        "loyalty-ledger": MEMBER_VIEWERS,
        "loyalty-import-list": ["is_staff", "oscar_loyalty.import_members"],
        "loyalty-import-detail": ["is_staff", "oscar_loyalty.import_members"],
        "loyalty-import-run": ["is_staff", "oscar_loyalty.import_members"],
    }

    def ready(self):
        from . import imports, views

        self.overview_view = views.ProgrammeOverviewView
        self.settings_view = views.ProgrammeSettingsView
        self.member_list_view = views.MemberListView
        self.member_detail_view = views.MemberDetailView
        self.member_adjust_view = views.MemberAdjustView
        self.member_set_tier_view = views.MemberSetTierView
        self.member_issue_coupon_view = views.MemberIssueCouponView
        self.member_note_view = views.MemberNoteView
        self.liability_view = views.LiabilityView
        self.earnrule_list_view = views.EarnRuleListView
        self.earnrule_create_view = views.EarnRuleCreateView
        self.earnrule_update_view = views.EarnRuleUpdateView
        self.tier_list_view = views.TierListView
        self.tier_create_view = views.TierCreateView
        self.tier_update_view = views.TierUpdateView
        self.coupondesign_list_view = views.CouponDesignListView
        self.coupondesign_create_view = views.CouponDesignCreateView
        self.coupondesign_update_view = views.CouponDesignUpdateView
        self.coupondesign_issue_view = views.CouponDesignIssueTierView
        self.coupon_list_view = views.CouponListView
        self.reward_list_view = views.RewardListView
        self.reward_create_view = views.RewardCreateView
        self.reward_update_view = views.RewardUpdateView
        self.reward_redemptions_view = views.RewardRedemptionListView
        self.campaign_list_view = views.CampaignListView
        self.campaign_create_view = views.CampaignCreateView
        self.campaign_update_view = views.CampaignUpdateView
        self.campaign_report_view = views.CampaignReportView
        self.actionrule_list_view = views.ActionRuleListView
        self.actionrule_create_view = views.ActionRuleCreateView
        self.actionrule_update_view = views.ActionRuleUpdateView
        self.analytics_view = views.AnalyticsView
        self.winbackrule_list_view = views.WinBackRuleListView
        self.winbackrule_create_view = views.WinBackRuleCreateView
        self.winbackrule_update_view = views.WinBackRuleUpdateView
        self.winback_list_view = views.WinBackListView
        self.referral_list_view = views.ReferralListView
        self.audit_log_view = views.AuditLogView
        self.ledger_view = views.LedgerView
        self.member_consent_view = views.MemberConsentView
        self.import_list_view = imports.MemberImportListView
        self.import_detail_view = imports.MemberImportDetailView
        self.import_run_view = imports.MemberImportRunView

    def get_urls(self):
        urls = [
            path("", self.overview_view.as_view(), name="loyalty-overview"),
            path("settings/", self.settings_view.as_view(), name="loyalty-settings"),
            path("analytics/", self.analytics_view.as_view(), name="loyalty-analytics"),
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
            path(
                "members/<int:pk>/coupons/",
                self.member_issue_coupon_view.as_view(),
                name="loyalty-member-issue-coupon",
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
            path(
                "coupon-designs/",
                self.coupondesign_list_view.as_view(),
                name="loyalty-coupondesign-list",
            ),
            path(
                "coupon-designs/new/",
                self.coupondesign_create_view.as_view(),
                name="loyalty-coupondesign-create",
            ),
            path(
                "coupon-designs/<int:pk>/",
                self.coupondesign_update_view.as_view(),
                name="loyalty-coupondesign-update",
            ),
            path(
                "coupon-designs/<int:pk>/issue-to-tier/",
                self.coupondesign_issue_view.as_view(),
                name="loyalty-coupondesign-issue",
            ),
            path(
                "coupons/", self.coupon_list_view.as_view(), name="loyalty-coupon-list"
            ),
            path(
                "rewards/", self.reward_list_view.as_view(), name="loyalty-reward-list"
            ),
            path(
                "rewards/new/",
                self.reward_create_view.as_view(),
                name="loyalty-reward-create",
            ),
            path(
                "rewards/<int:pk>/",
                self.reward_update_view.as_view(),
                name="loyalty-reward-update",
            ),
            path(
                "rewards/<int:pk>/redemptions/",
                self.reward_redemptions_view.as_view(),
                name="loyalty-reward-redemptions",
            ),
            path(
                "campaigns/",
                self.campaign_list_view.as_view(),
                name="loyalty-campaign-list",
            ),
            path(
                "campaigns/new/",
                self.campaign_create_view.as_view(),
                name="loyalty-campaign-create",
            ),
            path(
                "campaigns/<int:pk>/",
                self.campaign_update_view.as_view(),
                name="loyalty-campaign-update",
            ),
            path(
                "campaigns/<int:pk>/report/",
                self.campaign_report_view.as_view(),
                name="loyalty-campaign-report",
            ),
            path(
                "action-rewards/",
                self.actionrule_list_view.as_view(),
                name="loyalty-actionrule-list",
            ),
            path(
                "action-rewards/<slug:action>/new/",
                self.actionrule_create_view.as_view(),
                name="loyalty-actionrule-create",
            ),
            path(
                "action-rewards/<int:pk>/",
                self.actionrule_update_view.as_view(),
                name="loyalty-actionrule-update",
            ),
            path(
                "win-back/",
                self.winbackrule_list_view.as_view(),
                name="loyalty-winbackrule-list",
            ),
            path(
                "win-back/new/",
                self.winbackrule_create_view.as_view(),
                name="loyalty-winbackrule-create",
            ),
            path(
                "win-back/<int:pk>/",
                self.winbackrule_update_view.as_view(),
                name="loyalty-winbackrule-update",
            ),
            path(
                "win-back/<int:pk>/members/",
                self.winback_list_view.as_view(),
                name="loyalty-winback-list",
            ),
            path(
                "referrals/",
                self.referral_list_view.as_view(),
                name="loyalty-referral-list",
            ),
            path("audit/", self.audit_log_view.as_view(), name="loyalty-audit-log"),
            path(
                "members/<int:pk>/notes/",
                self.member_note_view.as_view(),
                name="loyalty-member-note",
            ),
            path("ledger/", self.ledger_view.as_view(), name="loyalty-ledger"),
            path(
                "members/<int:pk>/consent/",
                self.member_consent_view.as_view(),
                name="loyalty-member-consent",
            ),
            path(
                "members/import/",
                self.import_list_view.as_view(),
                name="loyalty-import-list",
            ),
            path(
                "members/import/<int:pk>/",
                self.import_detail_view.as_view(),
                name="loyalty-import-detail",
            ),
            path(
                "members/import/<int:pk>/run/",
                self.import_run_view.as_view(),
                name="loyalty-import-run",
            ),
        ]
        return self.post_process_urls(urls)
