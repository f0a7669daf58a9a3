from django.contrib.auth.decorators import login_required
from django.urls import path
from django.utils.translation import gettext_lazy as _
from oscar.core.application import OscarConfig


class OscarLoyaltyConfig(OscarConfig):
    """The loyalty plugin. Never imports Wagtail: it works in any Oscar 4.2 shop."""

    name = "oscar_loyalty"
    label = "oscar_loyalty"
    namespace = "loyalty"
    verbose_name = _("Loyalty programme")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        from django.db.models.signals import post_migrate

        from . import checks, receivers, views  # noqa: F401  (checks, receivers)

        post_migrate.connect(_segment_conditions, sender=self)

        self.apply_points_view = views.ApplyPointsView
        self.remove_points_view = views.RemovePointsView
        self.account_view = views.AccountView
        self.reminder_consent_view = views.ReminderConsentView
        self.consent_view = views.ConsentView
        self.phone_view = views.PhoneView
        self.birthday_view = views.BirthdayView
        self.coupons_view = views.CouponsView
        self.checkin_view = views.CheckInView
        self.rewards_view = views.RewardsView
        self.reward_redeem_view = views.RewardRedeemView

    def get_urls(self):
        """The shopper's URLs, mounted by the shop (e.g. at ``shop/loyalty/``)."""
        urls = [
            path(
                "points/apply/",
                login_required(self.apply_points_view.as_view()),
                name="apply-points",
            ),
            path(
                "points/remove/",
                login_required(self.remove_points_view.as_view()),
                name="remove-points",
            ),
            path(
                "account/", login_required(self.account_view.as_view()), name="account"
            ),
            path(
                "account/reminders/",
                login_required(self.reminder_consent_view.as_view()),
                name="reminders",
            ),
            path(
                "account/consent/",
                login_required(self.consent_view.as_view()),
                name="consent",
            ),
            path(
                "account/phone/",
                login_required(self.phone_view.as_view()),
                name="phone",
            ),
            path(
                "account/birthday/",
                login_required(self.birthday_view.as_view()),
                name="birthday",
            ),
            path(
                "account/coupons/",
                login_required(self.coupons_view.as_view()),
                name="coupons",
            ),
            path(
                "account/check-in/",
                login_required(self.checkin_view.as_view()),
                name="checkin",
            ),
            path(
                "account/rewards/",
                login_required(self.rewards_view.as_view()),
                name="rewards",
            ),
            path(
                "account/rewards/<int:pk>/redeem/",
                login_required(self.reward_redeem_view.as_view()),
                name="reward-redeem",
            ),
        ]
        return self.post_process_urls(urls)


def _segment_conditions(sender, using="default", apps=None, **kwargs):
    """After ``migrate`` (and a test database flush): the offer conditions for
    member segments (:mod:`oscar_loyalty.segment_offers`), once the tables
    they need exist."""
    try:
        apps.get_model("oscar_loyalty", "ConditionSegment")
        apps.get_model("offer", "Condition")
    except (LookupError, AttributeError):
        return  # migrated back before them, or no migration state
    from .segment_offers import ensure_conditions

    ensure_conditions(using)
