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

from django.core.mail import get_connection
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
