"""StreamField blocks for member pages (each with an icon, template and preview)."""

from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _
from wagtail import blocks


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
