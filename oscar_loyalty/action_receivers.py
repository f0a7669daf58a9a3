"""Signal receivers for action rewards and referrals. They never raise into Oscar.

Like :mod:`oscar_loyalty.receivers`, each works in a savepoint (a failed
statement cannot poison the caller's transaction) and logs its failure, and is
connected with a ``dispatch_uid``:

* a product review saved approved earns its points; saved with another status
  (unapproved, rejected) or deleted, it loses them (once: approving it again pays
  nothing);
* a customer who registers gets the sign-up bonus and, when they followed a
  referral link, is attached to the referrer (the code kept in the session by
  :func:`oscar_loyalty.referral_capture.before_view`, with the device cookie);
* a user saved with first and last name (Oscar's profile form) may complete the
  profile (the birthday form must call
  :func:`~oscar_loyalty.services.actions.reward_profile_completion` itself: it
  updates the member row without a signal).
"""

import logging

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from oscar.apps.customer.signals import user_registered
from oscar.core.loading import get_model

from . import referral_capture
from .models import Member
from .services import actions, referrals
from .services.members import get_or_create_member

logger = logging.getLogger(__name__)

ProductReview = get_model("reviews", "ProductReview")
User = get_user_model()

#: A user saved with only these fields (a sign-in) cannot complete a profile.
SIGN_IN_FIELDS = frozenset({"last_login", "password"})


@receiver(post_save, sender=ProductReview, dispatch_uid="oscar_loyalty.review_saved")
def review_saved(sender, instance, created, raw=False, **kwargs):
    if raw:
        return
    try:
        with transaction.atomic():
            if instance.status == ProductReview.APPROVED:
                actions.reward_review(instance)
            elif not created:
                actions.reverse_review(instance.pk)
    except Exception:
        logger.exception("Could not update the points of review %s", instance.pk)


@receiver(
    post_delete, sender=ProductReview, dispatch_uid="oscar_loyalty.review_deleted"
)
def review_deleted(sender, instance, **kwargs):
    try:
        with transaction.atomic():
            actions.reverse_review(instance.pk)
    except Exception:
        logger.exception("Could not reverse the points of review %s", instance.pk)


@receiver(user_registered, dispatch_uid="oscar_loyalty.actions_on_registration")
def reward_registration(sender, request=None, user=None, **kwargs):
    try:
        with transaction.atomic():
            member = get_or_create_member(user, channel=Member.Channel.WEB)
    except Exception:
        logger.exception("Could not create the member account of user %s", user.pk)
        return
    try:
        with transaction.atomic():
            actions.reward_signup(member)
    except Exception:
        logger.exception("Could not give member %s the sign-up bonus", member.pk)
    if request is None:
        return
    code = referral_capture.pop_referral_code(request)
    if not code:
        return
    try:
        with transaction.atomic():
            referrals.attach_referral(
                member, code, device=referral_capture.device_of(request)
            )
    except Exception:
        logger.exception("Could not attach the referral of member %s", member.pk)


@receiver(user_logged_in, dispatch_uid="oscar_loyalty.device_on_sign_in")
def device_on_sign_in(sender, request=None, user=None, **kwargs):
    """The browser a member signs in with is one of their devices."""
    if request is not None:
        referral_capture.record_device(request, user)


@receiver(post_save, sender=User, dispatch_uid="oscar_loyalty.profile_saved")
def profile_saved(sender, instance, created, raw=False, update_fields=None, **kw):
    if raw or created:
        return
    if update_fields is not None and set(update_fields) <= SIGN_IN_FIELDS:
        return
    names = (getattr(instance, "first_name", ""), getattr(instance, "last_name", ""))
    if not all((name or "").strip() for name in names):
        return  # cannot be complete: no query
    try:
        with transaction.atomic():
            member = Member.objects.filter(user=instance).first()
            if member is not None:
                member.user = instance
                actions.reward_profile_completion(member)
    except Exception:
        logger.exception("Could not reward the profile of user %s", instance.pk)
