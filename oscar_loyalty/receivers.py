"""Oscar signal receivers. They never raise into Oscar.

``order_placed`` is sent after the order is committed: an exception would make
Oscar thaw the basket and show an error for an order that exists (django-oscar#3768).
So each receiver works in a savepoint (a failed statement cannot poison the
caller's transaction) and logs its failure; the ``award_missed_orders`` task and the
``loyalty_backfill`` command award what was missed, idempotently. Oscar sends
these signals with instances as senders, so they are connected without ``sender``
and with a ``dispatch_uid``.
"""

import logging

from celery.signals import task_postrun, task_prerun
from django.core.signals import request_finished, request_started
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from oscar.apps.customer.signals import user_registered
from oscar.apps.order.signals import order_placed, order_status_changed
from oscar.core.loading import get_model

# offer_cache and action_receivers connect receivers; action_tasks registers tasks.
from . import (  # noqa: F401
    action_receivers,
    action_tasks,
    conf,
    consent,
    offer_cache,
    redemption,
    tier_offers,
)
from .conf import loyalty_settings
from .middleware import may_hold_points
from .models import (
    Campaign,
    CampaignStep,
    CouponDesign,
    Hold,
    Member,
    ProgrammeSetting,
    Tier,
)
from .notifications import notify
from .services import coupons, orders, tiers
from .services.holds import release_hold
from .services.members import get_or_create_member, remember_language
from .templatetags.loyalty_consent import FIELD as SIGNUP_FIELD

logger = logging.getLogger(__name__)

PaymentEventQuantity = get_model("order", "PaymentEventQuantity")
BasketLine = get_model("basket", "Line")


@receiver(order_placed, dispatch_uid="oscar_loyalty.award_order")
def award_points_for_order(sender, order, user=None, **kwargs):
    try:
        with transaction.atomic():
            orders.award_order(order)
    except Exception:
        logger.exception("Could not award points for order %s", order.number)
    if order.basket_id and order.user_id:
        # Points applied to this basket but not used by the order (applied on
        # another device, so hidden from this session): back to the member now.
        try:
            # The plain read first: most orders have no hold left, and a savepoint
            # for them would cost two more statements per order.
            hold = Hold.objects.filter(
                basket_id=order.basket_id, status=Hold.Status.ACTIVE
            ).first()
            if hold is not None:
                with transaction.atomic():
                    release_hold(hold=hold)
        except Exception:
            logger.exception("Could not release the hold of basket %s", order.basket_id)


@receiver(order_status_changed, dispatch_uid="oscar_loyalty.order_status_changed")
def follow_order_status(sender, order, old_status, new_status, **kwargs):
    try:
        with transaction.atomic():
            orders.order_status_changed(order, new_status)
    except Exception:
        logger.exception(
            "Could not update points of order %s for status %r",
            order.number,
            new_status,
        )


@receiver(
    post_save,
    sender=PaymentEventQuantity,
    dispatch_uid="oscar_loyalty.refund_line",
)
def reverse_refunded_line(sender, instance, created, raw=False, **kwargs):
    if not created or raw:
        return
    try:
        with transaction.atomic():
            codes = loyalty_settings.REFUND_EVENT_CODES
            if instance.event.event_type.code in codes:
                orders.refund_line(
                    event_id=instance.event_id,
                    line=instance.line,
                    quantity=instance.quantity,
                )
                tiers.refresh_refunds(instance.line.order, codes)
    except Exception:
        logger.exception("Could not reverse points for refund event %s", instance.pk)


@receiver(user_registered, dispatch_uid="oscar_loyalty.join_on_registration")
def join_on_registration(sender, request=None, user=None, **kwargs):
    try:
        with transaction.atomic():
            member = get_or_create_member(user, channel=Member.Channel.WEB)
    except Exception:
        logger.exception("Could not create the member account of user %s", user.pk)
        return
    try:
        record_signup_consents(member, request)
    except Exception:
        logger.exception(
            "Could not record the sign-up consents of member %s", member.pk
        )
    try:
        notify("welcome", [member.pk])
    except Exception:
        logger.exception("Could not queue the welcome message of member %s", member.pk)
    try:
        with transaction.atomic():
            coupons.issue_welcome_coupons(member)
    except Exception:
        logger.exception("Could not issue the welcome coupons of member %s", member.pk)


def record_signup_consents(member, request):
    """What the shopper ticked on the sign-up form, and the language they signed
    up in. Only ticked boxes are recorded: an unticked box is no consent, which is
    what a new member has."""
    if request is None:
        return
    ticked = (
        set(request.POST.getlist(SIGNUP_FIELD)) if request.method == "POST" else set()
    )
    answers = {
        purpose: True for purpose in consent.SIGNUP_PURPOSES if purpose.value in ticked
    }
    if answers:
        consent.record(member, answers, source=consent.Source.SIGNUP, actor=member.user)
    remember_language(member, request, keep=True)


@receiver(post_save, sender=BasketLine, dispatch_uid="oscar_loyalty.basket_line_saved")
@receiver(
    post_delete, sender=BasketLine, dispatch_uid="oscar_loyalty.basket_line_deleted"
)
def refit_points_to_basket(sender, instance, raw=False, **kwargs):
    """A changed basket gives back, after its change commits, what it cannot use."""
    if raw:
        return
    basket_id = instance.basket_id
    basket = instance._state.fields_cache.get("basket")
    if basket is not None and not may_hold_points(basket):
        return  # the shopper's session says no points are applied: nothing to do

    def refit():
        try:
            if not Hold.objects.filter(
                basket_id=basket_id, status=Hold.Status.ACTIVE
            ).exists():
                return
            with transaction.atomic():
                redemption.refit_basket_hold(basket_id)
        except Exception:
            logger.exception("Could not refit the points held by basket %s", basket_id)

    transaction.on_commit(refit)


@receiver(post_save, sender=Tier, dispatch_uid="oscar_loyalty.tier_saved")
def tier_saved(sender, instance, raw=False, **kwargs):
    """A saved tier has its group and its offers (discount, free shipping) in step;
    once committed, every member's groups follow the tiers (a new tier or a moved
    rank changes who belongs in which group)."""
    if raw:
        return
    tiers.ensure_group(instance)
    tier_offers.sync_tier_offers(instance)
    from . import tasks

    transaction.on_commit(tasks.resync_tier_groups.delay, robust=True)


@receiver(
    post_save, sender=CouponDesign, dispatch_uid="oscar_loyalty.coupon_design_saved"
)
def coupon_design_saved(sender, instance, raw=False, **kwargs):
    """A saved design has its Oscar voucher offer in step (benefit, minimum spend)."""
    if raw:
        return
    from .coupons import sync_design_offer

    sync_design_offer(instance)


@receiver(post_save, sender=Campaign, dispatch_uid="oscar_loyalty.campaign_saved")
def campaign_saved(sender, instance, raw=False, **kwargs):
    """A saved campaign has its Oscar offer (and earn rule) in step."""
    if raw:
        return
    from .campaigns import sync_campaign

    sync_campaign(instance)


@receiver(post_save, sender=CampaignStep, dispatch_uid="oscar_loyalty.step_saved")
@receiver(post_delete, sender=CampaignStep, dispatch_uid="oscar_loyalty.step_deleted")
def campaign_step_changed(sender, instance, raw=False, origin=None, **kwargs):
    """A step changes the first threshold of its campaign's offer (not when the
    campaign itself is being deleted)."""
    if raw or isinstance(origin, Campaign):
        return
    from .campaigns import sync_campaign

    campaign = Campaign.objects.filter(pk=instance.campaign_id).first()
    if campaign is not None:
        sync_campaign(campaign)


@receiver(post_delete, sender=Campaign, dispatch_uid="oscar_loyalty.campaign_deleted")
def campaign_deleted(sender, instance, **kwargs):
    from .campaigns import withdraw

    withdraw(instance)


# The owner's programme settings: read once per request and once per task --------

_task_scopes = {}


@receiver(
    post_save, sender=ProgrammeSetting, dispatch_uid="oscar_loyalty.setting_saved"
)
@receiver(
    post_delete, sender=ProgrammeSetting, dispatch_uid="oscar_loyalty.setting_deleted"
)
def forget_programme_settings(sender, **kwargs):
    conf.forget_overrides()


@receiver(request_started, dispatch_uid="oscar_loyalty.settings_scope_start")
def open_request_settings(sender, **kwargs):
    conf.open_scope()


@receiver(request_finished, dispatch_uid="oscar_loyalty.settings_scope_end")
def close_request_settings(sender, **kwargs):
    conf.close_scope()


@task_prerun.connect(dispatch_uid="oscar_loyalty.settings_scope_task_start")
def open_task_settings(task_id=None, **kwargs):
    _task_scopes[task_id] = conf.open_scope()


@task_postrun.connect(dispatch_uid="oscar_loyalty.settings_scope_task_end")
def close_task_settings(task_id=None, **kwargs):
    token = _task_scopes.pop(task_id, None)
    try:
        conf.close_scope(token)
    except ValueError:  # opened in another context: nothing of it to restore
        conf.close_scope()
