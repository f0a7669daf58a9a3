"""Errors the ledger refuses a request with; each message is safe to show a user."""

from django.utils.translation import gettext_lazy as _


class LoyaltyError(Exception):
    """A refused points operation. Nothing was written."""

    default_message = _("This points operation is not possible.")

    def __init__(self, message=None, **params):
        self.message = message or self.default_message
        self.params = params
        super().__init__(str(self))

    def __str__(self):
        return str(self.message) % self.params if self.params else str(self.message)


class InvalidPoints(LoyaltyError):
    default_message = _("Enter a whole number of points greater than zero.")


class InsufficientPoints(LoyaltyError):
    default_message = _(
        "You have %(spendable)s points to spend, fewer than the %(requested)s "
        "asked for."
    )


class HoldNotActive(LoyaltyError):
    default_message = _(
        "The points reserved for this basket were released; apply them again."
    )


class ReasonRequired(LoyaltyError):
    default_message = _("Give a reason for this adjustment.")


class TierReasonRequired(LoyaltyError):
    default_message = _("Give a reason for changing this member's tier.")


class CouponReasonRequired(LoyaltyError):
    default_message = _("Give a reason for issuing this coupon.")


class TierProtectionInPast(LoyaltyError):
    default_message = _("Tier protection must end in the future.")


class LedgerDrift(LoyaltyError):
    default_message = _(
        "Your points could not be applied just now. Please try again, or contact "
        "us if this happens again."
    )


class RewardUnavailable(LoyaltyError):
    default_message = _("This reward is not available just now.")


class RewardPriceChanged(LoyaltyError):
    default_message = _(
        "The price of this reward has just changed to %(price)s points. Please "
        "look at it again before you redeem it."
    )


class RewardOutOfStock(LoyaltyError):
    default_message = _("Sorry, this reward is out of stock.")


class RewardNotForTier(LoyaltyError):
    default_message = _("This reward is for members of these tiers: %(tiers)s.")


class RewardLimitReached(LoyaltyError):
    default_message = _(
        "You have reached the limit for this reward (%(limit)s per member)."
    )


# Action rewards and referrals ---------------------------------------------------


class AlreadyCheckedIn(LoyaltyError):
    default_message = _("You have already checked in today.")
