"""The community's RSS feed: the latest posts the reader may open (a feed reader
is a visitor, so public posts only)."""

from django.contrib.syndication.views import Feed
from django.utils.translation import gettext_lazy as _

from .visibility import viewable

#: Posts in the feed.
ITEMS = 20


class CommunityFeed(Feed):
    description = _("The latest articles, events and stories of the members' club.")

    def get_object(self, request, *args, **kwargs):
        self.request = request
        from .community import community_for

        return community_for(request)

    def link(self, index):
        return index.get_url(self.request) if index else "/"

    def title(self, index):
        return index.title if index else str(_("Community"))

    def items(self, index):
        if index is None:
            return []
        posts = viewable(index.get_children().live(), self.request)
        return posts.order_by("-first_published_at", "-pk").specific()[:ITEMS]

    def item_title(self, post):
        return post.title

    def item_description(self, post):
        return getattr(post, "summary", "")

    def item_link(self, post):
        return post.get_url(self.request)

    def item_pubdate(self, post):
        return post.first_published_at
