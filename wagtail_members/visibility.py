"""Which pages a request may see, for every place that lists pages.

Wagtail enforces a page's privacy when it serves the page, and ``public()`` leaves
out every restricted page for everyone; nothing lists "the pages this member may
open". :func:`viewable` does, by the same rules as Wagtail's serving check
(``BaseViewRestriction.accept_request``): a page under a restriction the request
does not pass is left out with its whole subtree. Three queries, however many
restrictions: the restrictions, their groups, the user's groups.

Every listing of member pages goes through it: the community index, the member
menu, member search and the feed. (Wagtail's sitemap already uses ``public()``.)
"""

from wagtail.models import PageViewRestriction


def _user_group_ids(request):
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return set()
    cached = getattr(request, "_wagtail_members_group_ids", None)
    if cached is None:
        cached = set(user.groups.values_list("pk", flat=True))
        request._wagtail_members_group_ids = cached
    return cached


def passes(restriction, request, group_ids):
    """``restriction.accept_request(request)`` without a query per restriction
    (``group_ids``: the user's groups; the restriction's groups prefetched)."""
    user = getattr(request, "user", None)
    signed_in = user is not None and user.is_authenticated
    if restriction.restriction_type == PageViewRestriction.PASSWORD:
        passed = request.session.get(
            restriction.passed_view_restrictions_session_key, []
        )
        return restriction.pk in passed
    if restriction.restriction_type == PageViewRestriction.LOGIN:
        return signed_in
    if restriction.restriction_type == PageViewRestriction.GROUPS:
        if signed_in and user.is_superuser:
            return True
        return any(group.pk in group_ids for group in restriction.groups.all())
    return True


def denied_pages(request):
    """The pages whose restriction ``request`` does not pass (their subtrees are
    closed to it); read once per request."""
    cached = getattr(request, "_wagtail_members_denied", None)
    if cached is None:
        restrictions = PageViewRestriction.objects.select_related(
            "page"
        ).prefetch_related("groups")
        cached = []
        for restriction in restrictions:
            if not passes(restriction, request, _user_group_ids(request)):
                cached.append(restriction.page)
        request._wagtail_members_denied = cached
    return cached


def visible(pages, request):
    """The pages of the list ``pages`` that ``request`` may open, in order: for
    short lists already read (a menu); nothing more is read when it is empty."""
    pages = list(pages)
    if not pages:
        return pages
    closed = [page.path for page in denied_pages(request)]
    return [page for page in pages if not any(page.path.startswith(p) for p in closed)]


def viewable(queryset, request):
    """``queryset`` (of pages) without those ``request`` may not open."""
    for page in denied_pages(request):
        queryset = queryset.not_descendant_of(page, inclusive=True)
    return queryset


def tier_needed(restrictions):
    """The tier a member needs to pass every one of ``restrictions`` (GROUPS
    restrictions), or None when one of them names no tier's group (a page for
    staff, say): then no tier opens it. The tiers are read once."""
    from . import selectors

    every = selectors.tiers()
    needed = None
    for restriction in restrictions:
        tier = selectors.lowest_tier_of_groups(
            [group.name for group in restriction.groups.all()], every
        )
        if tier is None:
            return None
        if needed is None or tier.rank > needed.rank:
            needed = tier
    return needed


def audience(page):
    """Who ``page`` is for, from its Privacy setting (its own or an ancestor's):
    ``("public", None)``, ``("members", None)`` (signed-in), ``("tier", tier)``
    (a tier's group and those above), ``("groups", None)`` (other groups) or
    ``("password", None)``."""
    restrictions = list(page.get_view_restrictions())
    kinds = {restriction.restriction_type for restriction in restrictions}
    if PageViewRestriction.PASSWORD in kinds:
        return "password", None
    groups = [
        restriction
        for restriction in restrictions
        if restriction.restriction_type == PageViewRestriction.GROUPS
    ]
    if groups:
        tier = tier_needed(groups)
        return ("tier", tier) if tier is not None else ("groups", None)
    if PageViewRestriction.LOGIN in kinds:
        return "members", None
    return "public", None
