"""Redeeming a reward from its confirmation form: shared by the shop's reward
pages and ``wagtail_members``' reward catalogue, so both say and do the same.

The confirmation page draws a one-time token (:func:`new_token`); the POSTed
form (:class:`RedeemForm`, CSRF-protected by the view) is redeemed through
:func:`oscar_loyalty.services.rewards.redeem_reward` for the signed-in shopper
only. Every outcome is a message on the request, never an error page.
"""

import secrets

from django import forms
from django.contrib import messages
from django.core.validators import RegexValidator
from django.utils.formats import number_format
from django.utils.translation import gettext as _

from .exceptions import LoyaltyError, RewardUnavailable
from .models import Reward
from .services import rewards as reward_service
from .services.members import get_or_create_member

#: ``secrets.token_urlsafe(24)``: 32 characters.
TOKEN_BYTES = 24


def new_token():
    return secrets.token_urlsafe(TOKEN_BYTES)


class RedeemForm(forms.Form):
    """The confirmation form: the reward, the price the member saw, and the
    one-time token the page drew (the redemption's idempotency key: a second
    submission is the same one)."""

    reward = forms.IntegerField(min_value=1)
    price = forms.IntegerField(min_value=1, required=False)
    token = forms.CharField(
        min_length=16,
        max_length=64,
        validators=[RegexValidator(r"^[A-Za-z0-9_-]+$")],
    )


def redeem_posted(request, reward_id):
    """Redeem reward ``reward_id`` from the form in ``request.POST`` for the
    signed-in shopper; the outcome goes to ``request``'s messages. True when
    the reward is redeemed (now, or by this same form before)."""
    form = RedeemForm(request.POST)
    if not form.is_valid() or form.cleaned_data["reward"] != reward_id:
        messages.error(
            request, _("This form has expired. Please choose the reward again.")
        )
        return False
    reward = Reward.objects.filter(pk=reward_id).first()
    if reward is None:
        messages.error(request, str(RewardUnavailable()))
        return False
    member = get_or_create_member(request.user)
    # The key holds the member and the reward: a token can only ever replay this
    # member's redemption of this reward.
    token = f"{member.pk}:{reward.pk}:{form.cleaned_data['token']}"
    try:
        redemption = reward_service.redeem_reward(
            member=member,
            reward=reward,
            token=token,
            expected_price=form.cleaned_data.get("price"),
        )
    except LoyaltyError as exc:
        messages.error(request, str(exc))
        return False
    coupon = redemption.coupon
    if coupon is None:  # its voucher was deleted since (a replayed form)
        messages.info(request, _("You have already redeemed this reward."))
    else:
        messages.success(
            request,
            _(
                "You spent %(points)s points on %(reward)s. Your coupon code "
                "is %(code)s."
            )
            % {
                "points": number_format(redemption.points, force_grouping=True),
                "reward": reward.name,
                "code": coupon.voucher.code,
            },
        )
    return True
