"""StreamField blocks for member pages (each with an icon, template and preview)."""

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from wagtail import blocks
from wagtail.images.blocks import ImageBlock


class CallToActionBlock(blocks.StructBlock):
    """A headline, a sentence and one button: "Join the club", "See your rewards"."""

    title = blocks.CharBlock(label=_("Title"), max_length=120)
    text = blocks.TextBlock(label=_("Text"), required=False, max_length=400)
    button_label = blocks.CharBlock(label=_("Button label"), max_length=60)
    page = blocks.PageChooserBlock(label=_("Link to page"), required=False)
    url = blocks.CharBlock(
        label=_("Or link to URL"),
        required=False,
        max_length=300,
        help_text=_("A path such as /shop/accounts/register/ or a full URL."),
    )

    def clean(self, value):
        value = super().clean(value)
        url = (value.get("url") or "").strip()
        if not value.get("page") and not url:
            message = _("Choose a page or enter a URL for the button.")
        elif url and not url.startswith(("/", "https://", "http://")):
            message = _("Enter a path starting with / or a URL starting with https://.")
        else:
            return value
        raise blocks.StructBlockValidationError(
            block_errors={"url": ValidationError(message)}
        )

    class Meta:
        icon = "pick"
        label = _("Call to action")
        template = "wagtail_members/blocks/call_to_action.html"
        description = _("A short message with one button.")
        preview_value = {
            "title": "Join the club",
            "text": "Earn points on every order and unlock member prices.",
            "button_label": "Join now",
            "url": "/shop/accounts/login/",
        }


def _tier_choices():
    from . import selectors

    return selectors.tier_choices()


def _optional_tier_choices():
    return [("", _("Every member")), *_tier_choices()]


class TierBadgeBlock(blocks.StructBlock):
    """A tier's badge in its colours, with an optional line beside it ("Gold
    members ship free")."""

    tier = blocks.ChoiceBlock(label=_("Tier"), choices=_tier_choices)
    text = blocks.CharBlock(label=_("Text"), required=False, max_length=160)

    def get_context(self, value, parent_context=None):
        from . import selectors

        context = super().get_context(value, parent_context=parent_context)
        request = (parent_context or {}).get("request")
        context["tier"] = next(
            (
                tier
                for tier in selectors.request_tiers(request)
                if tier.code == value.get("tier")
            ),
            None,
        )
        return context

    class Meta:
        icon = "pick"
        label = _("Tier badge")
        template = "wagtail_members/blocks/tier_badge.html"
        description = _("A tier's badge in its colours, with a line of text.")
        preview_value = {"tier": "gold", "text": "Gold members ship free."}


class BenefitCardBlock(blocks.StructBlock):
    """One benefit in a card: what it is, who gets it, where to read more."""

    title = blocks.CharBlock(label=_("Title"), max_length=120)
    text = blocks.TextBlock(label=_("Text"), required=False, max_length=400)
    minimum_tier = blocks.ChoiceBlock(
        label=_("For members from"),
        choices=_optional_tier_choices,
        required=False,
        help_text=_("Higher tiers get it too."),
    )
    page = blocks.PageChooserBlock(label=_("Read more on"), required=False)

    def get_context(self, value, parent_context=None):
        from . import selectors

        context = super().get_context(value, parent_context=parent_context)
        request = (parent_context or {}).get("request")
        context["tiers"] = selectors.tiers_from(
            value.get("minimum_tier") or "", selectors.request_tiers(request)
        )
        return context

    class Meta:
        icon = "tick-inverse"
        label = _("Benefit card")
        template = "wagtail_members/blocks/benefit_card.html"
        description = _("One benefit, the tiers that get it and a link.")
        preview_value = {
            "title": "Free shipping",
            "text": "Every order ships free, whatever its size.",
            "minimum_tier": "gold",
        }


class RewardTeaserBlock(blocks.StructBlock):
    """The first few rewards of the catalogue, with their prices in points."""

    title = blocks.CharBlock(label=_("Title"), max_length=120)
    count = blocks.IntegerBlock(
        label=_("Rewards shown"), min_value=1, max_value=12, default=3
    )
    page = blocks.PageChooserBlock(
        label=_("Reward catalogue"),
        required=False,
        page_type="wagtail_members.RewardCataloguePage",
    )

    def get_context(self, value, parent_context=None):
        from . import selectors

        context = super().get_context(value, parent_context=parent_context)
        request = (parent_context or {}).get("request")
        user = getattr(request, "user", None)
        context["offers"] = selectors.reward_offers(user)[: value.get("count") or 3]
        return context

    class Meta:
        icon = "gift"
        label = _("Reward teaser")
        template = "wagtail_members/blocks/reward_teaser.html"
        description = _("The first rewards of the catalogue and their prices.")
        preview_value = {"title": "Spend your points", "count": 3}


class FigureBlock(blocks.StructBlock):
    """An image with alt text and an optional caption. The image of a
    collection restricted to members or a tier is served only to readers its
    collection lets in (``wagtail_members.media``)."""

    image = ImageBlock(label=_("Image"))
    caption = blocks.CharBlock(label=_("Caption"), required=False, max_length=250)

    class Meta:
        icon = "image"
        label = _("Image")
        template = "wagtail_members/blocks/figure.html"
        description = _("An image, with a caption if you like.")


class MemberBodyBlock(blocks.StreamBlock):
    heading = blocks.CharBlock(
        label=_("Heading"),
        icon="title",
        max_length=120,
        template="wagtail_members/blocks/heading.html",
        preview_value="Why join",
    )
    paragraph = blocks.RichTextBlock(
        label=_("Paragraph"),
        icon="pilcrow",
        features=["bold", "italic", "link", "ol", "ul"],
        preview_value="<p>Members earn one point for every yuan they spend.</p>",
    )
    call_to_action = CallToActionBlock()
    tier_badge = TierBadgeBlock()
    benefit_card = BenefitCardBlock()
    reward_teaser = RewardTeaserBlock()
    figure = FigureBlock()
