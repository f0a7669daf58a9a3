"""Member page types.

Wagtail 8's ``Page`` is swappable: each page type is an abstract mixin carrying its
fields and behaviour plus a concrete page on Wagtail's default base. A project with
its own ``WAGTAIL_PAGE_MODEL`` combines the mixin with that base instead.
"""

import swapper
from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.utils.cache import patch_cache_control
from django.utils.translation import gettext_lazy as _
from wagtail.admin.panels import FieldPanel, MultiFieldPanel
from wagtail.contrib.routable_page.models import RoutablePageMixin, path
from wagtail.fields import RichTextField, StreamField
from wagtail.images import get_image_model_string
from wagtail.models import Page, TranslatableMixin
from wagtail.search import index

from . import selectors
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

    def serve(self, request, *args, **kwargs):
        return private_when_signed_in(request, super().serve(request, *args, **kwargs))


def private_when_signed_in(request, response):
    """A member page shows the signed-in reader's own points and tier: no shared
    cache may keep it."""
    if request.user.is_authenticated:
        patch_cache_control(response, private=True)
    return response


def tier_choices():
    """The programme's tiers (code, name), read when a form is drawn (not on the
    model field: Django's checks would read the database before it exists)."""
    return [("", "---------"), *selectors.tier_choices()]


def optional_tier_choices():
    return [("", _("Every member")), *selectors.tier_choices()]


def validate_tier_code(code):
    """A tier code must name one of the programme's tiers (as they are now)."""
    if code and code not in {known for known, _name in selectors.tier_choices()}:
        raise ValidationError(
            _("There is no tier %(code)s in the programme."), params={"code": code}
        )


class MemberHomePageMixin(MemberPageMixin):
    """The programme's landing page. A signed-in member sees their points (and
    what is pending or expires soon), tier and badge, the way to the next tier,
    their latest entries and coupons, and quick links; a visitor sees the
    editors' pitch and a join button (Oscar's registration, then back here).
    """

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

    def get_context(self, request, *args, **kwargs):
        context = super().get_context(request, *args, **kwargs)
        context["summary"] = selectors.member_summary(request.user)
        children = self.get_children().live().specific()
        context["benefits_page"] = next(
            (page for page in children if isinstance(page, BenefitCataloguePageMixin)),
            None,
        )
        context["rewards_page"] = next(
            (page for page in children if isinstance(page, RewardCataloguePageMixin)),
            None,
        )
        return context


class TierDisplay(TranslatableMixin, models.Model):
    """How a tier looks on the member pages: the editors' name, colour, badge
    image and short description. The tier's rules (thresholds, rates) are the
    programme's, set in Oscar's dashboard; what is left blank here is taken
    from there."""

    tier_code = models.CharField(
        _("tier"), max_length=32, validators=[validate_tier_code]
    )
    display_name = models.CharField(
        _("name on the pages"),
        max_length=64,
        blank=True,
        help_text=_("Leave empty for the tier's name in the programme."),
    )
    colour = models.CharField(
        _("colour"),
        max_length=7,
        blank=True,
        validators=[
            RegexValidator(
                selectors.COLOUR_PATTERN,
                _("Enter a colour as # and six hexadecimal digits, e.g. #c9a227."),
            )
        ],
        help_text=_("The badge's colour, e.g. #c9a227; empty for the programme's."),
    )
    badge_image = models.ForeignKey(
        get_image_model_string(),
        verbose_name=_("badge image"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    short_description = models.TextField(
        _("short description"),
        max_length=300,
        blank=True,
        help_text=_("One or two sentences on the tier, for the benefit pages."),
    )

    panels = [
        FieldPanel("tier_code", widget=forms.Select(choices=tier_choices)),
        FieldPanel("display_name"),
        FieldPanel("colour"),
        FieldPanel("badge_image"),
        FieldPanel("short_description"),
    ]

    class Meta(TranslatableMixin.Meta):
        verbose_name = _("tier display")
        verbose_name_plural = _("tier displays")
        ordering = ["tier_code"]
        constraints = [
            models.UniqueConstraint(
                fields=["tier_code", "locale"], name="wagtail_members_tier_display_once"
            )
        ]

    def __str__(self):
        return self.display_name or self.tier_code


class BenefitCataloguePageMixin(MemberPageMixin):
    """What each tier gets: a comparison table (tiers × benefits) built from the
    programme's tiers and the benefit pages below it, with the editors' copy."""

    intro = RichTextField(
        _("introduction"), blank=True, features=["bold", "italic", "link"]
    )
    body = StreamField(MemberBodyBlock(), verbose_name=_("body"), blank=True)

    content_panels = [*Page.content_panels, FieldPanel("intro"), FieldPanel("body")]
    search_fields = [
        *Page.search_fields,
        index.SearchField("intro"),
        index.SearchField("body"),
    ]
    template = "wagtail_members/benefit_catalogue_page.html"

    class Meta:
        abstract = True

    def benefit_pages(self, request):
        """The live benefit pages below, those ``request`` may open only (a page
        gated to Gold is no row for a Silver member or a visitor)."""
        from .visibility import viewable

        pages = viewable(self.get_children().live(), request).order_by("path")
        return [page for page in pages.specific() if isinstance(page, BenefitPageMixin)]

    def get_context(self, request, *args, **kwargs):
        context = super().get_context(request, *args, **kwargs)
        tiers = selectors.tiers()
        context["tiers"] = tiers
        context["rows"] = comparison_rows(tiers, self.benefit_pages(request))
        context["basis"] = selectors.tier_basis()
        context["summary"] = selectors.member_summary(request.user)
        return context


def comparison_rows(tiers, benefit_pages):
    """The table's rows: the programme's own benefits (qualifying threshold,
    points multiplier, member discount, free shipping), then one per benefit
    page. Each row: (label, page or None, [cell per tier]); a cell is the text
    shown, "" for a tick or None for not included."""
    rows = [
        (_("Bonus points"), None, [
            f"×{tier.points_multiplier.normalize():f}" if tier.has_bonus_points
            else None
            for tier in tiers
        ]),
        (_("Member discount"), None, [
            f"{tier.discount_percent.normalize():f}%" if tier.has_discount else None
            for tier in tiers
        ]),
        (_("Free shipping"), None, [
            "" if tier.free_shipping else None for tier in tiers
        ]),
    ]  # fmt: skip
    for page in benefit_pages:
        included = {
            tier.code for tier in selectors.tiers_from(page.minimum_tier, tiers)
        }
        rows.append(
            (page.title, page, ["" if t.code in included else None for t in tiers])
        )
    return rows


class BenefitPageMixin(MemberPageMixin):
    """One benefit: what it is, and which tiers it is for (a minimum tier: the
    tiers above it get it too)."""

    summary = models.CharField(
        _("summary"),
        max_length=250,
        blank=True,
        help_text=_("One sentence, shown in the catalogue."),
    )
    minimum_tier = models.CharField(
        _("for members from"),
        max_length=32,
        blank=True,
        validators=[validate_tier_code],
        help_text=_("Empty: every member. Higher tiers get it too."),
    )
    body = StreamField(MemberBodyBlock(), verbose_name=_("body"), blank=True)

    content_panels = [
        *Page.content_panels,
        MultiFieldPanel(
            [
                FieldPanel("summary"),
                FieldPanel(
                    "minimum_tier", widget=forms.Select(choices=optional_tier_choices)
                ),
            ],
            heading=_("Benefit"),
        ),
        FieldPanel("body"),
    ]
    search_fields = [
        *Page.search_fields,
        index.SearchField("summary"),
        index.SearchField("body"),
    ]
    template = "wagtail_members/benefit_page.html"

    class Meta:
        abstract = True

    def get_context(self, request, *args, **kwargs):
        context = super().get_context(request, *args, **kwargs)
        context["tiers"] = selectors.tiers_from(self.minimum_tier)
        return context


class RewardCataloguePageMixin(MemberPageMixin):
    """The rewards bought with points, with their price, stock and whether the
    signed-in member can redeem them; redeeming is confirmed on a page of its
    own and done by the loyalty programme's service (POST, CSRF)."""

    intro = RichTextField(
        _("introduction"), blank=True, features=["bold", "italic", "link"]
    )
    body = StreamField(MemberBodyBlock(), verbose_name=_("body"), blank=True)

    content_panels = [*Page.content_panels, FieldPanel("intro"), FieldPanel("body")]
    search_fields = [
        *Page.search_fields,
        index.SearchField("intro"),
        index.SearchField("body"),
    ]
    template = "wagtail_members/reward_catalogue_page.html"

    class Meta:
        abstract = True

    def get_context(self, request, *args, **kwargs):
        context = super().get_context(request, *args, **kwargs)
        context["offers"] = selectors.reward_offers(request.user)
        context["spendable"] = selectors.spendable_points(request.user)
        return context

    @path("")
    def catalogue(self, request):
        return private_when_signed_in(request, self.render(request))

    @path("redeem/<int:reward_id>/", name="redeem")
    def redeem(self, request, reward_id):
        from .views import redeem_reward

        return redeem_reward(request, self, reward_id)


class CommunityIndexPageMixin(MemberPageMixin):
    """The community: articles, events (member days) and members' stories, newest
    first. Each post's audience is its Privacy setting (public, signed-in members,
    or a tier's group and those above); the list shows a reader only the posts
    they may open."""

    intro = RichTextField(
        _("introduction"), blank=True, features=["bold", "italic", "link"]
    )

    content_panels = [*Page.content_panels, FieldPanel("intro")]
    search_fields = [*Page.search_fields, index.SearchField("intro")]
    template = "wagtail_members/community_index_page.html"
    #: Posts per page of the list.
    PER_PAGE = 12
    KINDS = {
        "article": "ArticlePage",
        "event": "EventPage",
        "story": "StoryPage",
    }

    class Meta:
        abstract = True

    def posts(self, request, kind=""):
        from .visibility import viewable

        posts = self.get_children().live()
        model_name = self.KINDS.get(kind)
        if model_name:
            from django.apps import apps

            posts = posts.type(apps.get_model("wagtail_members", model_name))
        posts = viewable(posts, request).order_by("-first_published_at", "-pk")
        return posts.specific()

    def get_context(self, request, *args, **kwargs):
        from django.core.paginator import Paginator

        context = super().get_context(request, *args, **kwargs)
        kind = request.GET.get("kind", "")
        if kind not in self.KINDS:
            kind = ""
        paginator = Paginator(self.posts(request, kind), self.PER_PAGE)
        context["posts"] = paginator.get_page(request.GET.get("page"))
        context["kind"] = kind
        context["kinds"] = [
            ("", _("Everything")),
            ("article", _("Articles")),
            ("event", _("Events")),
            ("story", _("Members' stories")),
        ]
        return context


class CommunityPostMixin(MemberPageMixin):
    """What articles, events and stories share: a summary and a body."""

    summary = models.CharField(
        _("summary"),
        max_length=250,
        blank=True,
        help_text=_("One or two sentences, shown in the community list."),
    )
    body = StreamField(MemberBodyBlock(), verbose_name=_("body"), blank=True)

    search_fields = [
        *Page.search_fields,
        index.SearchField("summary"),
        index.SearchField("body"),
    ]

    class Meta:
        abstract = True

    def get_context(self, request, *args, **kwargs):
        from .visibility import audience

        context = super().get_context(request, *args, **kwargs)
        context["audience"], context["audience_tier"] = audience(self)
        return context


class ArticlePageMixin(CommunityPostMixin):
    content_panels = [*Page.content_panels, FieldPanel("summary"), FieldPanel("body")]
    template = "wagtail_members/article_page.html"

    class Meta:
        abstract = True


class EventPageMixin(CommunityPostMixin):
    """A member day, a tasting, a visit: when and where."""

    starts_at = models.DateTimeField(_("starts"))
    ends_at = models.DateTimeField(_("ends"), null=True, blank=True)
    place = models.CharField(_("place"), max_length=200, blank=True)

    content_panels = [
        *Page.content_panels,
        MultiFieldPanel(
            [FieldPanel("starts_at"), FieldPanel("ends_at"), FieldPanel("place")],
            heading=_("When and where"),
        ),
        FieldPanel("summary"),
        FieldPanel("body"),
    ]
    template = "wagtail_members/event_page.html"

    class Meta:
        abstract = True

    def clean(self):
        super().clean()
        if self.ends_at and self.starts_at and self.ends_at < self.starts_at:
            raise ValidationError(
                {"ends_at": _("An event cannot end before it starts.")}
            )


class StoryPageMixin(CommunityPostMixin):
    """A member's story or suggestion, as they sent it and editors approved it."""

    author_name = models.CharField(_("author's name"), max_length=80, blank=True)
    submitted_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("sent by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        editable=False,
    )

    #: A copy an editor makes is theirs, not the member's: it earns nobody points.
    exclude_fields_in_copy = ["submitted_by"]

    content_panels = [
        *Page.content_panels,
        FieldPanel("author_name"),
        FieldPanel("summary"),
        FieldPanel("body"),
    ]
    template = "wagtail_members/story_page.html"

    class Meta:
        abstract = True


class MemberHomePage(MemberHomePageMixin, Page):  # noqa: DJ008 (Page has __str__)
    max_count_per_parent = 1
    subpage_types = [
        "wagtail_members.BenefitCataloguePage",
        "wagtail_members.RewardCataloguePage",
        "wagtail_members.CommunityIndexPage",
    ]

    class Meta:
        verbose_name = _("member home page")
        verbose_name_plural = _("member home pages")


class BenefitCataloguePage(BenefitCataloguePageMixin, Page):  # noqa: DJ008
    parent_page_types = ["wagtail_members.MemberHomePage"]
    subpage_types = ["wagtail_members.BenefitPage"]
    max_count_per_parent = 1

    class Meta:
        verbose_name = _("benefit catalogue page")
        verbose_name_plural = _("benefit catalogue pages")


class BenefitPage(BenefitPageMixin, Page):  # noqa: DJ008
    parent_page_types = ["wagtail_members.BenefitCataloguePage"]
    subpage_types = []

    class Meta:
        verbose_name = _("benefit page")
        verbose_name_plural = _("benefit pages")


class RewardCataloguePage(  # noqa: DJ008
    RoutablePageMixin, RewardCataloguePageMixin, Page
):
    parent_page_types = ["wagtail_members.MemberHomePage"]
    subpage_types = []
    max_count_per_parent = 1

    class Meta:
        verbose_name = _("reward catalogue page")
        verbose_name_plural = _("reward catalogue pages")


class CommunityIndexPage(CommunityIndexPageMixin, Page):  # noqa: DJ008
    parent_page_types = ["wagtail_members.MemberHomePage"]
    subpage_types = [
        "wagtail_members.ArticlePage",
        "wagtail_members.EventPage",
        "wagtail_members.StoryPage",
    ]
    max_count_per_parent = 1

    class Meta:
        verbose_name = _("community index page")
        verbose_name_plural = _("community index pages")


class ArticlePage(ArticlePageMixin, Page):  # noqa: DJ008
    parent_page_types = ["wagtail_members.CommunityIndexPage"]
    subpage_types = []

    class Meta:
        verbose_name = _("article page")
        verbose_name_plural = _("article pages")


class EventPage(EventPageMixin, Page):  # noqa: DJ008
    parent_page_types = ["wagtail_members.CommunityIndexPage"]
    subpage_types = []

    class Meta:
        verbose_name = _("event page")
        verbose_name_plural = _("event pages")


class StoryPage(StoryPageMixin, Page):  # noqa: DJ008
    parent_page_types = ["wagtail_members.CommunityIndexPage"]
    subpage_types = []

    class Meta:
        verbose_name = _("story page")
        verbose_name_plural = _("story pages")
