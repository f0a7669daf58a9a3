"""E-mails to members, sent through Oscar's communication framework.

Each message is an Oscar ``CommunicationEventType``: a data migration creates its
row, so the owner edits the subject and bodies in the dashboard (Content → Email
templates). Without a row (or for a field left NULL) Oscar falls back to the
plugin's file templates, ``oscar/communication/emails/commtype_<code>_*``.
Oscar's ``Dispatcher`` sends the message and, with ``OSCAR_SAVE_SENT_EMAILS_TO_DB``,
records it in the customer's e-mail history, like Oscar's own e-mails. Both are
loaded with ``get_model``/``get_class``, so a shop that forked the communication
app keeps its own versions.

Nothing here writes the ledger; the jobs decide who is told what and call this after
their transaction commits.
"""

import logging
import threading
from contextlib import contextmanager

from django.conf import settings
from django.contrib.sites.models import Site
from django.core.mail import get_connection
from django.utils import translation
from oscar.core.loading import get_class, get_model

from .conf import loyalty_settings
from .models import Member

logger = logging.getLogger(__name__)

#: The event type of the reminder before points expire (its templates are
#: ``commtype_loyalty_points_expiring_subject.txt``, ``_body.txt``, ``_body.html``).
EXPIRY_REMINDER = "LOYALTY_POINTS_EXPIRING"

#: Members read per query when sending.
MEMBER_BATCH = 1_000


def event_type(code):
    """The owner's version of the event type ``code``, or Oscar's file fallback.

    Read once per batch of e-mails, not once per e-mail as Oscar's
    ``get_and_render`` would.
    """
    CommunicationEventType = get_model("communication", "CommunicationEventType")
    return CommunicationEventType.objects.filter(
        code=code
    ).first() or CommunicationEventType(code=code)


def send_expiry_reminders(reminders):
    """E-mail each member the points that expire soon; returns the e-mails sent.

    ``reminders`` maps member ids to ``[(date, points), ...]`` in date order. One
    e-mail per member over one mail connection. A failure for one member (a refused
    address, a template error) is logged and the others are still sent; the lots
    stay marked as reminded, so nobody is e-mailed twice (see
    :func:`oscar_loyalty.jobs.remind_expiring_lots`).
    """
    Dispatcher = get_class("communication.utils", "Dispatcher")
    commtype = event_type(EXPIRY_REMINDER)
    member_ids = sorted(reminders)
    sent = 0
    with get_connection() as mail_connection:
        dispatcher = Dispatcher(logger=logger, mail_connection=mail_connection)
        for start in range(0, len(member_ids), MEMBER_BATCH):
            batch = member_ids[start : start + MEMBER_BATCH]
            members = Member.objects.filter(pk__in=batch).select_related("user")
            for member in members.order_by("pk"):
                expiring = [
                    {"date": day, "points": points}
                    for day, points in reminders[member.pk]
                ]
                try:
                    # In the member's language (the shop's default without one).
                    with translation.override(
                        member.language or settings.LANGUAGE_CODE
                    ):
                        messages = commtype.get_messages(
                            dispatcher.get_base_context(
                                user=member.user,
                                member=member,
                                expiring=expiring,
                                total_points=sum(item["points"] for item in expiring),
                                programme_name=loyalty_settings.PROGRAMME_NAME,
                            )
                        )
                    if dispatcher.dispatch_user_messages(member.user, messages).get(
                        "email"
                    ):
                        sent += 1
                except Exception:
                    logger.exception(
                        "Could not send the expiry reminder to member %s", member.number
                    )
    return sent


# Programme messages: events, channels, the member's language -----------------------

#: Event name -> Oscar communication event type code. Templates:
#: ``oscar/communication/emails/commtype_<code lowercased>_{subject.txt,body.txt,
#: body.html}`` and ``oscar/communication/sms/commtype_<code>_body.txt``.
EVENTS = {
    "welcome": "LOYALTY_WELCOME",
    "points_confirmed": "LOYALTY_POINTS_CONFIRMED",
    "tier_up": "LOYALTY_TIER_UP",
    "tier_down": "LOYALTY_TIER_DOWN",
    "coupon_issued": "LOYALTY_COUPON_ISSUED",
    "birthday": "LOYALTY_BIRTHDAY",
    "reward_redeemed": "LOYALTY_REWARD_REDEEMED",
    "winback": "LOYALTY_WINBACK",
}


def language_code(code, language):
    """The event type of ``code`` written for ``language``: ``LOYALTY_WELCOME`` in
    Simplified Chinese is ``LOYALTY_WELCOME_ZH_HANS``."""
    return f"{code}_{language.upper().replace('-', '_')}" if language else code


class Channel:
    """Where a message goes. Subclasses set ``purpose`` (the consent it needs,
    a :class:`~oscar_loyalty.models.ConsentChange.Purpose` value) and implement
    :meth:`send`; they are listed in ``OSCAR_LOYALTY_NOTIFICATION_CHANNELS``."""

    purpose = None

    def open(self):
        """Called once before a batch (a connection to keep open, say)."""

    def close(self):
        """Called once after a batch, also after an error."""

    def send(self, member, messages, event):
        """Send ``messages`` (Oscar's ``get_messages()``: ``subject``, ``body``,
        ``html``, ``sms``) to ``member``; True if sent."""
        raise NotImplementedError


class EmailChannel(Channel):
    """E-mail through Oscar's ``Dispatcher`` (kept in the customer's e-mail
    history with ``OSCAR_SAVE_SENT_EMAILS_TO_DB``), one mail connection a batch."""

    purpose = "email"

    def open(self):
        self.connection = get_connection()
        self.connection.open()
        Dispatcher = get_class("communication.utils", "Dispatcher")
        self.dispatcher = Dispatcher(logger=logger, mail_connection=self.connection)

    def close(self):
        self.connection.close()

    def send(self, member, messages, event):
        if not member.user.email:
            return False
        # Text messages are other channels' work (Oscar's dispatcher has none).
        email = {**messages, "sms": ""}
        sent = self.dispatcher.dispatch_user_messages(member.user, email)
        return bool(sent.get("email"))


class LoggingChannel(Channel):
    """An example text-message backend: writes the SMS it would send to the log
    (``oscar_loyalty.notifications``). A real one calls the provider's API in
    :meth:`send`; members without a phone number are skipped."""

    purpose = "sms"

    def send(self, member, messages, event):
        text = (messages.get("sms") or messages.get("subject") or "").strip()
        if not member.phone or not text:
            return False
        logger.info("SMS to %s (%s): %s", member.phone, event, text)
        return True


def channels():
    from django.utils.module_loading import import_string

    return [import_string(path)() for path in loyalty_settings.NOTIFICATION_CHANNELS]


def event_types(code):
    """``{language: event type}`` of ``code`` ("" for the default), one query."""
    CommunicationEventType = get_model("communication", "CommunicationEventType")
    found = {
        row.code: row
        for row in CommunicationEventType.objects.filter(code__startswith=code)
    }
    default = found.get(code) or CommunicationEventType(code=code)
    return found, default


def sms_text(code, context):
    from django.template import TemplateDoesNotExist
    from django.template.loader import get_template

    CommunicationEventType = get_model("communication", "CommunicationEventType")
    try:
        template = get_template(CommunicationEventType.sms_template_file % code.lower())
    except TemplateDoesNotExist:
        return ""
    return template.render(context)


def coupons_of(extra, members):
    """The coupons the messages to ``members`` name, in one query."""
    from .models import MemberCoupon

    ids = []
    for member in members:
        context = extra.get(str(member.pk), {})
        if "coupon_id" in context:
            ids.append(context["coupon_id"])
        ids.extend(context.get("coupon_ids", ()))
    if not ids:
        return {}
    return MemberCoupon.objects.select_related("design", "voucher").in_bulk(ids)


def send_event(event, member_ids, extra=None):
    """Send ``event`` to the members ``member_ids`` on every channel whose purpose
    they agreed to, each in their language; returns ``{channel name: sent}``.

    ``extra`` maps a member id (as text, it travels through a task queue) to
    context for that member's message (points confirmed, the coupon...). A failure
    for one member is logged and the others are still sent.
    """
    from .consent import consenting

    code = EVENTS[event]
    extra = extra or {}
    found, default = event_types(code)
    sent = {}
    for channel in channels():
        name = type(channel).__name__
        sent[name] = 0
        channel.open()
        try:
            for start in range(0, len(member_ids), MEMBER_BATCH):
                batch = member_ids[start : start + MEMBER_BATCH]
                members = consenting(
                    channel.purpose, Member.objects.filter(pk__in=batch)
                ).select_related("user", "tier")
                members = list(members.order_by("pk"))
                coupons = coupons_of(extra, members)
                site = Site.objects.get_current()
                for member in members:
                    language = member.language or settings.LANGUAGE_CODE
                    context = dict(extra.get(str(member.pk), {}))
                    if "coupon_id" in context:
                        context["coupon"] = coupons.get(context["coupon_id"])
                    if "coupon_ids" in context:
                        context["coupons"] = [
                            coupons[pk] for pk in context["coupon_ids"] if pk in coupons
                        ]
                    commtype = found.get(language_code(code, language), default)
                    try:
                        with translation.override(language):
                            context = {
                                "user": member.user,
                                "member": member,
                                "site": site,
                                "programme_name": str(loyalty_settings.PROGRAMME_NAME),
                                **context,
                            }
                            messages = commtype.get_messages(context)
                            if not messages.get("sms") and commtype is not default:
                                # A language's row has no SMS text of its own: the
                                # event's file, in this language.
                                messages["sms"] = sms_text(code, context)
                            if channel.send(member, messages, event):
                                sent[name] += 1
                    except Exception:
                        logger.exception(
                            "Could not send %s to member %s by %s",
                            event,
                            member.number,
                            name,
                        )
        finally:
            channel.close()
    return sent


_quiet = threading.local()


@contextmanager
def paused():
    """No programme messages are queued inside this block (in this thread): for
    loading data and replaying past events, such as the demo's order history."""
    before = getattr(_quiet, "on", False)
    _quiet.on = True
    try:
        yield
    finally:
        _quiet.on = before


def notify(event, member_ids, extra=None):
    """Send ``event`` after the current transaction commits, in a task: never in
    the way of the work that caused it (an order, a review) and never for work
    that was rolled back. Without a broker it is sent in this process; inside
    :func:`paused`, not at all."""
    from functools import partial

    from django.db import transaction

    if getattr(_quiet, "on", False):
        return
    member_ids = sorted({int(pk) for pk in member_ids})
    if not member_ids:
        return
    extra = {str(pk): value for pk, value in (extra or {}).items()}
    transaction.on_commit(partial(_queue, event, member_ids, extra), robust=True)


def _queue(event, member_ids, extra):
    from . import tasks

    try:
        tasks.send_notifications.delay(event, member_ids, extra)
    except Exception:
        logger.warning("Could not queue %s; sending it now", event, exc_info=True)
        tasks.send_notifications(event, member_ids, extra)
