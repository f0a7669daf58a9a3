"""``include("wagtail_members.urls")`` before Wagtail's catch-all."""

from django.urls import path

from . import feeds, media, views

app_name = "wagtail_members"

urlpatterns = [
    path("join/", views.join, name="join"),
    path("share/", views.share, name="share"),
    path("search/", views.search, name="search"),
    path("feed/", feeds.CommunityFeed(), name="feed"),
    path("media/<path:name>", media.serve, name="media"),
]
