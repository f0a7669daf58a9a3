"""``{% load wagtail_members_tags %}``: the member menu, never with a page the
reader may not open."""

from django import template
from wagtail.models import Site

from ..models import MemberHomePage
from ..visibility import visible

register = template.Library()


@register.inclusion_tag("wagtail_members/includes/member_menu.html", takes_context=True)
def member_menu(context):
    """The member home page of the request's site and its children shown in
    menus ("Show in menus" in the page's Promote tab) that the reader may open."""
    request = context.get("request")
    if request is None:
        return {"home": None, "items": []}
    site = Site.find_for_request(request)
    homes = MemberHomePage.objects.live()
    if site is not None:
        # The site's own tree (its default language); translations live beside it.
        homes = homes.descendant_of(site.root_page)
    home = homes.order_by("path").first()
    if home is not None:
        home = home.localized  # the reader's language's, where translated
    if home is None or not visible([home], request):
        return {"home": None, "items": [], "request": request}
    items = visible(home.get_children().live().in_menu().order_by("path"), request)
    return {"home": home, "items": items, "request": request}
