"""Member page types.

Wagtail 8's ``Page`` is swappable: each page type is an abstract mixin carrying its
fields and behaviour plus a concrete page on Wagtail's default base. A project with
its own ``WAGTAIL_PAGE_MODEL`` combines the mixin with that base instead.
"""

import swapper
from django.db import models
from django.utils.translation import gettext_lazy as _
from wagtail.admin.panels import FieldPanel
from wagtail.fields import RichTextField, StreamField
from wagtail.models import Page
from wagtail.search import index

from .blocks import MemberBodyBlock
from .conf import get_setting

swapper.set_app_prefix("wagtailcore", "wagtail")


class MemberPageMixin(models.Model):
    """What every member page shares: the configurable base template."""

    class Meta:
        abstract = True

    def get_context(self, request, *args, **kwargs):
        context = super().get_context(request, *args, **kwargs)
        context["wagtail_members_base"] = get_setting("BASE_TEMPLATE")
        return context


class MemberHomePageMixin(MemberPageMixin):
    """The programme's landing page: the pitch, how it works, where to join."""

    intro = RichTextField(
        _("introduction"),
        blank=True,
        features=["bold", "italic", "link"],
        help_text=_("One or two sentences shown at the top of the page."),
    )
    body = StreamField(MemberBodyBlock(), verbose_name=_("body"), blank=True)

    content_panels = [
        *Page.content_panels,
        FieldPanel("intro"),
        FieldPanel("body"),
    ]
    search_fields = [
        *Page.search_fields,
        index.SearchField("intro"),
        index.SearchField("body"),
    ]
    template = "wagtail_members/member_home_page.html"

    class Meta:
        abstract = True


class MemberHomePage(MemberHomePageMixin, Page):  # noqa: DJ008 (Page has __str__)
    max_count_per_parent = 1

    class Meta:
        verbose_name = _("member home page")
        verbose_name_plural = _("member home pages")
