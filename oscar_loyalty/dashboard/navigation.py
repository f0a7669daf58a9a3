"""The loyalty entry for ``OSCAR_DASHBOARD_NAVIGATION``.

Imported by settings modules, so it must not import models::

    from oscar_loyalty.dashboard.navigation import LOYALTY_DASHBOARD_NAVIGATION
    OSCAR_DASHBOARD_NAVIGATION = OSCAR_DASHBOARD_NAVIGATION + [
        LOYALTY_DASHBOARD_NAVIGATION
    ]

Oscar hides each entry from users who lack its screen's permissions
(``LoyaltyDashboardConfig.permissions_map``).
"""

from django.utils.translation import gettext_lazy as _

LOYALTY_DASHBOARD_NAVIGATION = {
    "label": _("Loyalty"),
    "icon": "fas fa-award",
    "children": [
        {
            "label": _("Analytics"),
            "url_name": "loyalty_dashboard:loyalty-analytics",
        },
        {
            "label": _("Members"),
            "url_name": "loyalty_dashboard:loyalty-member-list",
        },
        {
            "label": _("Import members"),
            "url_name": "loyalty_dashboard:loyalty-import-list",
        },
        {
            "label": _("Points ledger"),
            "url_name": "loyalty_dashboard:loyalty-ledger",
        },
        {
            "label": _("Points liability"),
            "url_name": "loyalty_dashboard:loyalty-liability",
        },
        {
            "label": _("Earn rules"),
            "url_name": "loyalty_dashboard:loyalty-earnrule-list",
        },
        {
            "label": _("Tiers"),
            "url_name": "loyalty_dashboard:loyalty-tier-list",
        },
        {
            "label": _("Coupons"),
            "url_name": "loyalty_dashboard:loyalty-coupondesign-list",
        },
        {
            "label": _("Issued coupons"),
            "url_name": "loyalty_dashboard:loyalty-coupon-list",
        },
        {
            "label": _("Rewards catalogue"),
            "url_name": "loyalty_dashboard:loyalty-reward-list",
        },
        {
            "label": _("Campaigns"),
            "url_name": "loyalty_dashboard:loyalty-campaign-list",
        },
        {
            "label": _("Action rewards"),
            "url_name": "loyalty_dashboard:loyalty-actionrule-list",
        },
        {
            "label": _("Win-back"),
            "url_name": "loyalty_dashboard:loyalty-winbackrule-list",
        },
        {
            "label": _("Referrals"),
            "url_name": "loyalty_dashboard:loyalty-referral-list",
        },
        {
            "label": _("Staff audit log"),
            "url_name": "loyalty_dashboard:loyalty-audit-log",
        },
        {
            "label": _("Programme settings"),
            "url_name": "loyalty_dashboard:loyalty-settings",
        },
        {
            "label": _("Programme overview"),
            "url_name": "loyalty_dashboard:loyalty-overview",
        },
    ],
}
