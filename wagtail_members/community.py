"""Members share stories and suggestions; editors moderate them; a published story
earns its author the programme's "story" action reward.

A submission becomes a draft :class:`~wagtail_members.models.StoryPage` under the
community index, owned by nobody on the admin side, and is started on the page's
moderation workflow (Wagtail's own: a *Group approval* task for the moderators, as
assigned in *Settings → Workflows*). When a moderator approves it, Wagtail
publishes it; ``page_published`` then rewards the author once per story (the
reward's key is the page's id), and deleting a published story takes the points
back.
"""

import logging
import secrets

from django import forms
from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver
from django.utils.html import escape
from django.utils.text import slugify
from django.utils.translation import gettext_lazy as _
from wagtail.rich_text import RichText
from wagtail.signals import page_published

from .conf import get_setting
from .models import CommunityIndexPage, StoryPage

logger = logging.getLogger(__name__)


def max_waiting():
    """Submissions of one member waiting for moderation at most
    (``WAGTAIL_MEMBERS_MAX_WAITING_STORIES``)."""
    return get_setting("MAX_WAITING_STORIES")


class StoryForm(forms.Form):
    title = forms.CharField(
        label=_("Title"),
        max_length=120,
        widget=forms.TextInput(attrs={"class": "form-control"}),
    )
    text = forms.CharField(
        label=_("Your story or suggestion"),
        max_length=5000,
        widget=forms.Textarea(attrs={"rows": 8, "class": "form-control"}),
    )
    name = forms.CharField(
        label=_("Name to show"),
        max_length=80,
        required=False,
        help_text=_("Leave empty to stay anonymous."),
        widget=forms.TextInput(attrs={"class": "form-control"}),
    )

    def clean_text(self):
        text = self.cleaned_data["text"].strip()
        if len(text) < 20:
            raise forms.ValidationError(_("Please write at least 20 characters."))
        return text


class TooManyWaiting(Exception):
    pass


class NoCommunity(Exception):
    pass


def waiting_count(user):
    """The member's stories still being moderated (a rejected or withdrawn one no
    longer waits)."""
    from wagtail.models import Page, WorkflowState

    drafts = StoryPage.objects.filter(submitted_by=user, live=False).values("pk")
    return (
        Page.objects.filter(
            pk__in=drafts,
            _workflow_states__status=WorkflowState.STATUS_IN_PROGRESS,
        )
        .distinct()
        .count()
    )


def community_for(request):
    """The community index the reader may open (None when there is none)."""
    from .visibility import viewable, visible

    indexes = viewable(CommunityIndexPage.objects.live(), request)
    index = indexes.order_by("path").first()
    if index is None:
        return None
    localized = index.localized  # the reader's language's, where translated
    return localized if visible([localized], request) else index


def body_of(text):
    """The member's plain text as paragraphs, escaped: nothing they type is
    markup."""
    paragraphs = [part.strip() for part in text.replace("\r\n", "\n").split("\n\n")]
    return "".join(
        "<p>{}</p>".format(escape(part).replace("\n", "<br>"))
        for part in paragraphs
        if part
    )


@transaction.atomic
def submit_story(user, *, index, title, text, name=""):
    """Save the member's story as a draft under the community ``index`` and
    start its moderation workflow. Returns the draft page."""
    if index is None:
        raise NoCommunity()
    if waiting_count(user) >= max_waiting():
        raise TooManyWaiting()
    slug = f"{slugify(title)[:40] or 'story'}-{secrets.token_hex(3)}"
    page = StoryPage(
        title=title,
        slug=slug,
        live=False,
        summary=text[:200].rsplit(" ", 1)[0] if len(text) > 200 else text,
        body=[("paragraph", RichText(body_of(text)))],
        author_name=name,
        submitted_by=user,
    )
    index.add_child(instance=page)
    page.save_revision(user=user)
    workflow = page.get_workflow()
    if workflow is not None:
        workflow.start(page, user)
    else:
        logger.warning(
            "Story %s waits as a draft: no moderation workflow covers %s",
            page.pk,
            index,
        )
    return page


@receiver(page_published, dispatch_uid="wagtail_members.story_published")
def reward_published_story(sender, instance, **kwargs):
    if not isinstance(instance, StoryPage) or instance.submitted_by_id is None:
        return
    if instance.alias_of_id is not None:  # the original earned it already
        return
    from oscar_loyalty.services import actions

    story_id, user_id = instance.pk, instance.submitted_by_id
    transaction.on_commit(
        lambda: actions.reward_story(user_id=user_id, story_id=story_id),
        robust=True,
    )


@receiver(post_delete, sender=StoryPage, dispatch_uid="wagtail_members.story_deleted")
def take_back_deleted_story(sender, instance, **kwargs):
    from oscar_loyalty.services import actions

    story_id = instance.pk
    transaction.on_commit(lambda: actions.reverse_story(story_id), robust=True)
