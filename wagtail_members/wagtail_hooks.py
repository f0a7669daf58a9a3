"""Wagtail hooks: tier-gated pages answer 403 in place for signed-in members of
a lower tier, and editors manage the tiers' display data as snippets."""

from django.utils.translation import gettext_lazy as _
from wagtail import hooks
from wagtail.snippets.models import register_snippet
from wagtail.snippets.views.snippets import SnippetViewSet

from .models import TierDisplay
from .views import failed_group_restrictions, upgrade_response

#: Before Wagtail's own privacy check (order 0), which would send a signed-in
#: member back to the login page.
BEFORE_PRIVACY_CHECK = -10


@hooks.register("on_serve_page", order=BEFORE_PRIVACY_CHECK)
def tier_gate(serve_page):
    def inner(page, request, serve_args, serve_kwargs):
        if request.user.is_authenticated:
            failed = failed_group_restrictions(page.get_view_restrictions(), request)
            if failed:
                return upgrade_response(request, failed, page=page)
        return serve_page(page, request, serve_args, serve_kwargs)

    return inner


class TierDisplayViewSet(SnippetViewSet):
    model = TierDisplay
    icon = "pick"
    menu_label = _("Tier display")
    menu_order = 300
    add_to_admin_menu = True
    list_display = ["__str__", "tier_code", "colour"]


register_snippet(TierDisplayViewSet)
