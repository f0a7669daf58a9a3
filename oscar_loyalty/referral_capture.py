"""Capturing referrals and devices around each request, for ``LoyaltyMiddleware``.

* :func:`before_view`: a visit with ``?ref=CODE`` (a referral link) keeps the
  code in the session until the visitor signs up, when the ``user_registered``
  receiver (:mod:`oscar_loyalty.action_receivers`) attaches the new member to the
  referrer. The last link followed wins. Only the code's shape is checked here:
  an unknown code is ignored at sign-up.
* :func:`after_response`: every browser gets a long-lived random *device cookie*
  (:data:`DEVICE_COOKIE`, HttpOnly, SameSite=Lax, Secure over HTTPS);
* :func:`record_device`: when a member signs in (Django's ``user_logged_in``, see
  :mod:`oscar_loyalty.action_receivers`) or signs up, the browser's device is
  recorded (:class:`MemberDevice`), so a referral from a browser the referrer
  uses is refused. Every session starts with a sign-in, so this costs nothing
  on ordinary pages.

The cookie carries no personal data: a random token, only compared with the
tokens recorded for members. Neither function lets an error reach the response.
"""

import logging
import secrets

from django.db import transaction

from .models import Member
from .services.referrals import clean_device, normalise_code, remember_device

logger = logging.getLogger(__name__)

#: The query parameter of referral links.
REF_PARAM = "ref"
#: Session key: the referral code of the link the visitor followed.
SESSION_KEY = "oscar_loyalty_referral_code"
#: The device cookie: a random token identifying the browser, nothing else.
DEVICE_COOKIE = "oscar_loyalty_device"
#: The device cookie lasts two years (renewed when it is missing only).
DEVICE_COOKIE_MAX_AGE = 2 * 365 * 24 * 60 * 60


def before_view(request):
    """Keep the code of a referral link (``?ref=CODE``) in the visitor's session.

    Signed-in shoppers are already members: their links are not kept.
    """
    raw = request.GET.get(REF_PARAM)
    if raw is None:
        return
    session = getattr(request, "session", None)
    user = getattr(request, "user", None)
    if session is None or (user is not None and user.is_authenticated):
        return
    code = normalise_code(raw)
    if code is not None and session.get(SESSION_KEY) != code:
        session[SESSION_KEY] = code


def device_of(request):
    """The request's device cookie, or "" when it has none the plugin set."""
    return clean_device(request.COOKIES.get(DEVICE_COOKIE, ""))


def after_response(request, response):
    """Give the browser a device cookie if it has none (no database work: the
    device is recorded at sign-in, :func:`record_device`). Returns ``response``."""
    device = device_of(request)
    if not device and DEVICE_COOKIE in response.cookies:
        # Already given by an earlier call for this response: keep that one.
        device = clean_device(response.cookies[DEVICE_COOKIE].value)
    if not device:
        device = secrets.token_urlsafe(24)
        response.set_cookie(
            DEVICE_COOKIE,
            device,
            max_age=DEVICE_COOKIE_MAX_AGE,
            httponly=True,
            samesite="Lax",
            secure=request.is_secure(),
        )
    return response


def record_device(request, user):
    """Record the browser of ``request`` as a device of ``user``'s member (a
    sign-in or sign-up). Never raises."""
    device = device_of(request)
    if not device or user is None:
        return
    try:
        with transaction.atomic():
            member = Member.objects.filter(user_id=user.pk).only("pk").first()
            if member is not None:
                remember_device(member, device)
    except Exception:
        logger.exception("Could not record the device of user %s", user.pk)


def pop_referral_code(request):
    """The referral code kept in the session, removed from it (None if none)."""
    session = getattr(request, "session", None)
    if session is None:
        return None
    return session.pop(SESSION_KEY, None)
