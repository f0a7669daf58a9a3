"""The member pages' views: the reward catalogue's redeem step, the page a
member of a lower tier gets instead of a gated page (HTTP 403), and the
"join or upgrade" view to point ``WAGTAIL_FRONTEND_LOGIN_URL`` at.

Wagtail sends everyone who fails a page's or document's GROUPS restriction to
its login URL, signed in or not; Oscar's login view sends a signed-in shopper
back to ``LOGIN_REDIRECT_URL`` and ignores ``next``, so a Silver member opening
a Gold page would bounce between the two. Pages never get there (the
``on_serve_page`` hook in ``wagtail_hooks`` answers 403 in place); for anything
else Wagtail gates (documents of a restricted collection) :func:`join` shows
visitors the login form and signed-in members the same 403 page.
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import redirect_to_login
from django.http import Http404, HttpResponseNotAllowed, HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import Resolver404, resolve
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.utils.translation import ngettext
from django.views.decorators.cache import never_cache
from wagtail.models import Page, PageViewRestriction

from oscar_loyalty.exceptions import RewardUnavailable
from oscar_loyalty.redeeming import new_token, redeem_posted

from . import selectors
from .conf import get_setting
from .visibility import tier_needed

UPGRADE_TEMPLATE = "wagtail_members/upgrade.html"


def _login_url():
    return str(settings.LOGIN_URL)


def redeem_reward(request, page, reward_id):
    """The reward catalogue's ``redeem/<id>/`` route: GET shows the confirmation
    (what the member spends and keeps) with a fresh one-time token and changes
    nothing; POST (CSRF-checked by Django's middleware) redeems through the
    loyalty service for the signed-in member and shows the outcome on the
    catalogue. Visitors are sent to the login form first."""
    catalogue = page.get_url(request)
    if not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path(), _login_url())
    if request.method == "POST":
        redeem_posted(request, reward_id)
        return HttpResponseRedirect(catalogue)
    if request.method not in ("GET", "HEAD"):
        return HttpResponseNotAllowed(["GET", "POST"])
    offers = selectors.reward_offers(request.user, reward_id=reward_id)
    if not offers:
        messages.error(request, str(RewardUnavailable()))
        return HttpResponseRedirect(catalogue)
    offer = offers[0]
    spendable = selectors.spendable_points(request.user)
    response = page.render(
        request,
        template="wagtail_members/reward_confirm.html",
        context_overrides={
            "offer": offer,
            "spendable": spendable,
            "left": spendable - offer.reward.points_price,
            "token": new_token(),
        },
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def failed_group_restrictions(restrictions, request):
    return [
        restriction
        for restriction in restrictions
        if restriction.restriction_type == PageViewRestriction.GROUPS
        and not restriction.accept_request(request)
    ]


def upgrade_response(request, restrictions, *, page=None):
    """The 403 page for a signed-in member who is not in a tier the content is
    for: which tier it is for, theirs, and what it takes to get there."""
    tier = tier_needed(restrictions)
    summary = selectors.member_summary(request.user)
    needed = None
    if tier is not None and summary is not None and summary.is_member:
        needed = max(tier.threshold - summary.value, 0)
    context = {
        "page": page,
        "required_tier": tier,
        "summary": summary,
        "needed": needed,
        "basis": selectors.tier_basis(),
        "benefits_url": _benefits_url(request),
        "wagtail_members_base": get_setting("BASE_TEMPLATE"),
    }
    response = TemplateResponse(request, UPGRADE_TEMPLATE, context, status=403)
    response.headers["Cache-Control"] = "no-store"
    return response


def _restrictions_for_path(request, path):
    """The view restrictions guarding ``path``: a page's (and its ancestors'),
    or a document's or gated file's collection's; None when it is neither (or
    is gone)."""
    try:
        match = resolve(path)
    except Resolver404:
        return None
    if match.url_name == "media" and match.namespace == "wagtail_members":
        from .media import find_file

        found, collection = find_file(match.kwargs["name"])
        return list(collection.get_view_restrictions()) if found else None
    if match.url_name == "wagtaildocs_serve":
        from wagtail.documents import get_document_model

        document_id = match.kwargs.get("document_id") or next(iter(match.args), None)
        document = get_document_model().objects.filter(pk=document_id).first()
        return list(document.collection.get_view_restrictions()) if document else None
    page = Page.find_for_request(request, path)
    return list(page.get_view_restrictions()) if page else None


@never_cache
def join(request):
    """``WAGTAIL_FRONTEND_LOGIN_URL``: visitors get the shop's login form (and
    come back to ``next``); a signed-in member gets the 403 "for Gold members and
    above, here is how to get there" page for what they were turned away from."""
    next_url = request.GET.get("next", "")
    if not url_has_allowed_host_and_scheme(
        next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        next_url = ""
    if not request.user.is_authenticated:
        return redirect_to_login(next_url or "/", _login_url())
    path = next_url.split("?", 1)[0] if next_url.startswith("/") else ""
    restrictions = _restrictions_for_path(request, path) if path else None
    if restrictions is None:
        # Not a page or document of ours: going back could loop, so say no here.
        return upgrade_response(request, [])
    failed = failed_group_restrictions(restrictions, request)
    if not failed:
        # They may read it (they were let in since): back to it.
        return HttpResponseRedirect(next_url)
    return upgrade_response(request, failed)


def _benefits_url(request):
    """Where the tiers' benefits are explained (a live, public benefit
    catalogue page), or None."""
    from .models import BenefitCataloguePage

    page = BenefitCataloguePage.objects.live().public().order_by("path").first()
    return page.localized.get_url(request) if page else None


@login_required
def share(request):
    """Members send a story or a suggestion; editors read it before it appears."""
    from .community import (
        NoCommunity,
        StoryForm,
        TooManyWaiting,
        community_for,
        max_waiting,
        submit_story,
    )

    index = community_for(request)
    if index is None:
        raise Http404
    form = StoryForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            submit_story(
                request.user,
                index=index,
                title=form.cleaned_data["title"],
                text=form.cleaned_data["text"],
                name=form.cleaned_data["name"],
            )
        except TooManyWaiting:
            form.add_error(
                None,
                ngettext(
                    "You have %(count)d story waiting to be read already; please "
                    "wait for it before sending another.",
                    "You have %(count)d stories waiting to be read already; please "
                    "wait for them before sending another.",
                    max_waiting(),
                )
                % {"count": max_waiting()},
            )
        except NoCommunity:
            raise Http404 from None
        else:
            messages.success(
                request,
                _(
                    "Thank you! Our editors will read it before it appears in the "
                    "community."
                ),
            )
            return HttpResponseRedirect(index.get_url(request))
    return TemplateResponse(
        request,
        "wagtail_members/share.html",
        {
            "form": form,
            "index": index,
            "wagtail_members_base": get_setting("BASE_TEMPLATE"),
        },
    )


#: Results per page of the member search.
SEARCH_PER_PAGE = 10


def search(request):
    """Search the site's pages, only among those the reader may open (Wagtail's
    search itself does not look at a page's privacy)."""
    from django.core.paginator import Paginator
    from wagtail.models import Site

    from .visibility import viewable

    # Quotes and NUL mean something to (or break) the search backends' parsers:
    # members search for words.
    query = request.GET.get("q", "").replace('"', " ").replace("\x00", "")
    query = query.strip()[:200]
    results = Page.objects.none()
    if query:
        pages = Page.objects.live()
        site = Site.find_for_request(request)
        if site is not None:
            pages = pages.descendant_of(site.root_page, inclusive=True)
        results = viewable(pages, request).specific().search(query)
    page_of_results = Paginator(results, SEARCH_PER_PAGE).get_page(
        request.GET.get("page")
    )
    return TemplateResponse(
        request,
        "wagtail_members/search.html",
        {
            "query": query,
            "results": page_of_results,
            "wagtail_members_base": get_setting("BASE_TEMPLATE"),
        },
    )
