"""URLs: Oscar under /shop/, its dashboard at /shop/dashboard/, Wagtail admin at /cms/,
Django admin at /django-admin/ and Wagtail pages at / (its catch-all last)."""

from django.apps import apps
from django.conf import settings
from django.conf.urls.static import static
from django.contrib import admin
from django.urls import include, path
from wagtail import urls as wagtail_urls
from wagtail.admin import urls as wagtailadmin_urls
from wagtail.contrib.sitemaps.views import sitemap
from wagtail.documents import urls as wagtaildocs_urls

urlpatterns = [
    path("i18n/", include("django.conf.urls.i18n")),
    path("django-admin/", admin.site.urls),
    path("cms/", include(wagtailadmin_urls)),
    path("documents/", include(wagtaildocs_urls)),
    # Wagtail's sitemap lists public pages only (PageQuerySet.public()).
    path("sitemap.xml", sitemap),
    path("club/", include("wagtail_members.urls")),
    # Oscar app configs' ``urls`` are (patterns, app_name, namespace) tuples:
    # they go straight to path(), not through include().
    path("shop/dashboard/loyalty/", apps.get_app_config("loyalty_dashboard").urls),
    path("shop/loyalty/", apps.get_app_config("oscar_loyalty").urls),
    path("shop/", include(apps.get_app_config("oscar").urls[0])),
]

if settings.DEBUG:
    urlpatterns += static(settings.MEDIA_URL, document_root=settings.MEDIA_ROOT)

urlpatterns.append(path("", include(wagtail_urls)))
