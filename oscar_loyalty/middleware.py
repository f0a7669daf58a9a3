"""``LoyaltyMiddleware``: lets the points offer skip its query for most pages.

Oscar prices the basket on every request, and the programme's offer must know
whether the shopper applied points to it. Without this middleware that is one
indexed query per page. With it, the shopper's session says which basket (if any)
they applied points to, so pages of the many shoppers who did not cost nothing.

It also stands in front of Oscar's voucher form (see
:func:`oscar_loyalty.coupons.voucher_entry_gate`): another member's coupon code is
answered as an unknown code, and guessing codes is throttled.

And it keeps a ``?ref=CODE`` referral link in the session until sign-up, and a
device cookie that refuses referrals from the referrer's own browser (see
:mod:`oscar_loyalty.referral_capture`).

The session is only a hint that saves queries: the hold in the database is the
truth. A session that says "points applied" when the hold is gone (released by its
timeout) costs one query and is then corrected; points applied on another device
show there once the shopper applies or removes points in that session.

Add it after Oscar's ``BasketMiddleware``::

    MIDDLEWARE = [..., "oscar.apps.basket.middleware.BasketMiddleware",
                  "oscar_loyalty.middleware.LoyaltyMiddleware"]
"""

from contextvars import ContextVar

#: The request being served, for code Oscar calls without it (offer conditions).
current_request = ContextVar("oscar_loyalty_request", default=None)

#: Session key: the id of the basket the shopper applied points to.
SESSION_KEY = "oscar_loyalty_points_basket"


class LoyaltyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        from . import referral_capture

        token = current_request.set(request)
        try:
            referral_capture.before_view(request)
            response = self.get_response(request)
            return referral_capture.after_response(request, response)
        finally:
            current_request.reset(token)

    def process_view(self, request, view_func, view_args, view_kwargs):
        if request.method != "POST":
            return None
        match = request.resolver_match
        if match is None or match.url_name != "vouchers-add":
            return None
        if "basket" not in match.namespaces:
            return None
        from .coupons import voucher_entry_gate

        return voucher_entry_gate(request)


def session_for(basket):
    """The session of the request whose shopper owns ``basket``, or None."""
    request = current_request.get()
    session = getattr(request, "session", None)
    user = getattr(request, "user", None)
    if session is None or user is None or not user.is_authenticated:
        return None
    if basket.owner_id != user.pk:
        return None
    return session


def may_hold_points(basket):
    """False only when the shopper's session says this basket has no points."""
    session = session_for(basket)
    if session is None:
        return True
    return session.get(SESSION_KEY) == basket.id


def remember_points(request, basket_id):
    """Note in the session that the shopper applied points to ``basket_id``."""
    if hasattr(request, "session"):
        request.session[SESSION_KEY] = basket_id


def forget_points(request_or_session):
    """Drop the note (points removed, or the hold was found gone)."""
    session = getattr(request_or_session, "session", request_or_session)
    if session is not None and SESSION_KEY in session:
        del session[SESSION_KEY]
