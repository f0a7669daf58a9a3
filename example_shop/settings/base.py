"""Settings shared by every environment of the demo shop.

Everything that differs between a laptop, CI and production comes from environment
variables with embedded defaults: SQLite, eager Celery and console e-mail, so a new
user needs no running service. Oscar reads some settings at import time (order status
pipelines, the class loader, the account redirect), so they live here and not in
``override_settings``.
"""

import os
from pathlib import Path

from celery.schedules import crontab
from django.urls import reverse_lazy
from django.utils.translation import gettext_lazy as _
from oscar.defaults import *  # noqa: F403

from example_shop.access import can_access_wagtail_admin
from oscar_loyalty.dashboard.navigation import LOYALTY_DASHBOARD_NAVIGATION
from oscar_loyalty.schedule import loyalty_beat_schedule

from .env import database_from_url, env_bool

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(os.environ.get("EXAMPLE_SHOP_VAR_DIR", BASE_DIR / "var"))

SECRET_KEY = os.environ.get(
    "DJANGO_SECRET_KEY", "insecure-demo-key-change-me-before-deploying-anywhere"
)
DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = [
    h.strip()
    for h in os.environ.get("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost").split(",")
    if h.strip()
]
CSRF_TRUSTED_ORIGINS = [
    o.strip() for o in os.environ.get("DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o
]

# Plugins and the project first, so their templates override Oscar's and Wagtail's
# (recursive {% extends %}) and their wagtail_hooks register first.
INSTALLED_APPS = [
    "oscar_loyalty.apps.OscarLoyaltyConfig",
    "oscar_loyalty.dashboard.apps.LoyaltyDashboardConfig",
    "wagtail_members.apps.WagtailMembersConfig",
    "example_shop.apps.ExampleShopConfig",
    # Django (sites and flatpages are required by Oscar)
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.sites",
    "django.contrib.sitemaps",
    "django.contrib.flatpages",
    # Wagtail
    "wagtail.contrib.forms",
    "wagtail.contrib.redirects",
    "wagtail.contrib.settings",
    "wagtail.contrib.routable_page",
    "wagtail.contrib.sitemaps",
    "wagtail.embeds",
    "wagtail.sites",
    "wagtail.locales",
    "wagtail.contrib.simple_translation",
    "wagtail.users",
    "wagtail.snippets",
    "wagtail.documents",
    "wagtail.images",
    "wagtail.search",
    "wagtail.admin",
    "wagtail",
    "modelcluster",
    "taggit",
    # Oscar
    "oscar.config.Shop",
    "oscar.apps.analytics.apps.AnalyticsConfig",
    "oscar.apps.checkout.apps.CheckoutConfig",
    "oscar.apps.address.apps.AddressConfig",
    "oscar.apps.shipping.apps.ShippingConfig",
    "oscar.apps.catalogue.apps.CatalogueConfig",
    "oscar.apps.catalogue.reviews.apps.CatalogueReviewsConfig",
    "oscar.apps.communication.apps.CommunicationConfig",
    "oscar.apps.partner.apps.PartnerConfig",
    "oscar.apps.basket.apps.BasketConfig",
    "oscar.apps.payment.apps.PaymentConfig",
    "oscar.apps.offer.apps.OfferConfig",
    "oscar.apps.order.apps.OrderConfig",
    "oscar.apps.customer.apps.CustomerConfig",
    "oscar.apps.search.apps.SearchConfig",
    "oscar.apps.voucher.apps.VoucherConfig",
    "oscar.apps.wishlists.apps.WishlistsConfig",
    "oscar.apps.dashboard.apps.DashboardConfig",
    "oscar.apps.dashboard.reports.apps.ReportsDashboardConfig",
    "oscar.apps.dashboard.users.apps.UsersDashboardConfig",
    "oscar.apps.dashboard.orders.apps.OrdersDashboardConfig",
    "oscar.apps.dashboard.catalogue.apps.CatalogueDashboardConfig",
    "oscar.apps.dashboard.offers.apps.OffersDashboardConfig",
    "oscar.apps.dashboard.partners.apps.PartnersDashboardConfig",
    "oscar.apps.dashboard.pages.apps.PagesDashboardConfig",
    "oscar.apps.dashboard.ranges.apps.RangesDashboardConfig",
    "oscar.apps.dashboard.reviews.apps.ReviewsDashboardConfig",
    "oscar.apps.dashboard.vouchers.apps.VouchersDashboardConfig",
    "oscar.apps.dashboard.communications.apps.CommunicationsDashboardConfig",
    "oscar.apps.dashboard.shipping.apps.ShippingDashboardConfig",
    # Third-party apps Oscar depends on
    "widget_tweaks",
    "haystack",
    "treebeard",
    "sorl.thumbnail",
    "django_tables2",
]

SITE_ID = 1

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "oscar.apps.basket.middleware.BasketMiddleware",
    "oscar_loyalty.middleware.LoyaltyMiddleware",
    "django.contrib.flatpages.middleware.FlatpageFallbackMiddleware",
    "wagtail.contrib.redirects.middleware.RedirectMiddleware",
]

ROOT_URLCONF = "example_shop.urls"
WSGI_APPLICATION = "example_shop.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.debug",
                "django.template.context_processors.request",
                "django.template.context_processors.i18n",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "wagtail.contrib.settings.context_processors.settings",
                "oscar.apps.search.context_processors.search_form",
                "oscar.apps.checkout.context_processors.checkout",
                "oscar.apps.communication.notifications.context_processors.notifications",
                "oscar.core.context_processors.metadata",
            ],
        },
    },
]

DATABASES = {
    "default": database_from_url(
        os.environ.get("DATABASE_URL"), sqlite_default=VAR_DIR / "db.sqlite3"
    )
}
if DATABASES["default"]["ENGINE"].endswith("sqlite3"):
    # The embedded default must work on a fresh checkout: make its folder.
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTHENTICATION_BACKENDS = [
    "oscar.apps.customer.auth_backends.EmailBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]

# Members sign in through Oscar's login. Wagtail sends whoever fails a private
# page's or document's restriction to WAGTAIL_FRONTEND_LOGIN_URL, signed in or not:
# wagtail_members' join view shows visitors Oscar's login form and signed-in members
# of a lower tier a "for Gold members and above" page (403), never a redirect loop.
LOGIN_URL = reverse_lazy("customer:login")
LOGIN_REDIRECT_URL = "/"
WAGTAIL_FRONTEND_LOGIN_URL = reverse_lazy("wagtail_members:join")

# Internationalisation: English and Simplified Chinese, switched from the site header.
LANGUAGE_CODE = os.environ.get("DJANGO_LANGUAGE_CODE", "en")
LANGUAGES = [("en", _("English")), ("zh-hans", _("Simplified Chinese"))]
WAGTAIL_CONTENT_LANGUAGES = LANGUAGES
LOCALE_PATHS = [BASE_DIR / "example_shop" / "locale"]
TIME_ZONE = os.environ.get("DJANGO_TIME_ZONE", "Asia/Shanghai")
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = Path(os.environ.get("DJANGO_STATIC_ROOT", VAR_DIR / "static"))
MEDIA_URL = "/media/"
MEDIA_ROOT = Path(os.environ.get("DJANGO_MEDIA_ROOT", VAR_DIR / "media"))
# Files of images and documents in collections restricted to members or tiers
# live outside MEDIA_ROOT and are served by wagtail_members' media view, which
# checks the reader first (README, "Images and documents of restricted collections").
WAGTAIL_MEMBERS_GATED_MEDIA_ROOT = Path(
    os.environ.get("DJANGO_GATED_MEDIA_ROOT", VAR_DIR / "gated-media")
)
STORAGES = {
    "default": {"BACKEND": "wagtail_members.storage.GatedFileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}

EMAIL_BACKEND = os.environ.get(
    "DJANGO_EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend"
)
DEFAULT_FROM_EMAIL = os.environ.get("DJANGO_DEFAULT_FROM_EMAIL", "shop@example.com")

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "example-shop",
    }
}

# Haystack: Oscar 4.2 lists the catalogue through the search index, and the
# "simple" engine cannot answer its filters (django-oscar#4366), so the demo uses
# Whoosh: pure Python, a folder on disk, no search server. Products are indexed as
# they are saved; `manage.py update_index` rebuilds the index.
HAYSTACK_CONNECTIONS = {
    "default": {
        "ENGINE": "haystack.backends.whoosh_backend.WhooshEngine",
        "PATH": str(Path(os.environ.get("HAYSTACK_WHOOSH_PATH", VAR_DIR / "whoosh"))),
    }
}
HAYSTACK_SIGNAL_PROCESSOR = "haystack.signals.RealtimeSignalProcessor"
# Whoosh has no query facets and splits field facets into words ("teaware" shows
# up as "tea" and "teawar"), so the demo lists categories without facets.
OSCAR_SEARCH_FACETS = {"fields": {}, "queries": {}}

# Oscar
OSCAR_SHOP_NAME = "Lotus & Co."
OSCAR_SHOP_TAGLINE = _("Tea, ceramics and small things, with a members' club")
OSCAR_DEFAULT_CURRENCY = "CNY"
OSCAR_FROM_EMAIL = DEFAULT_FROM_EMAIL
OSCAR_INITIAL_ORDER_STATUS = "Pending"
OSCAR_INITIAL_LINE_STATUS = "Pending"
OSCAR_ORDER_STATUS_PIPELINE = {
    "Pending": ("Being processed", "Cancelled"),
    "Being processed": ("Shipped", "Cancelled"),
    "Shipped": ("Complete", "Refunded"),
    "Complete": ("Refunded",),
    "Cancelled": (),
    "Refunded": (),
}
OSCAR_LINE_STATUS_PIPELINE = OSCAR_ORDER_STATUS_PIPELINE
OSCAR_ORDER_STATUS_CASCADE = {
    "Being processed": "Being processed",
    "Shipped": "Shipped",
    "Complete": "Complete",
    "Cancelled": "Cancelled",
    "Refunded": "Refunded",
}
OSCAR_REQUIRED_ADDRESS_FIELDS = ("first_name", "last_name", "line1", "line4", "country")
# ``+`` and not ``+=``: the latter mutates the list in oscar.defaults in place.
OSCAR_DASHBOARD_NAVIGATION = OSCAR_DASHBOARD_NAVIGATION + [  # noqa: F405
    LOYALTY_DASHBOARD_NAVIGATION,
    {
        "label": _("Content (Wagtail)"),
        "icon": "fas fa-feather",
        "url_name": "wagtailadmin_home",
        "access_fn": can_access_wagtail_admin,
    },
]

# Wagtail
WAGTAIL_SITE_NAME = OSCAR_SHOP_NAME
WAGTAILADMIN_BASE_URL = os.environ.get("WAGTAILADMIN_BASE_URL", "http://127.0.0.1:8000")
# Pages in English and Simplified Chinese: one Wagtail page tree per language
# (Wagtail's localisation; editors translate a page with "Translate" in the admin).
# No language prefix in the URL: a page has one address, served from the tree of
# the language the shopper picked in the header, as Oscar's pages are.
WAGTAIL_I18N_ENABLED = True
WAGTAILSEARCH_BACKENDS = {"default": {"BACKEND": "wagtail.search.backends.database"}}
WAGTAILDOCS_EXTENSIONS = [
    "csv",
    "docx",
    "key",
    "odt",
    "pdf",
    "pptx",
    "rtf",
    "txt",
    "xlsx",
]

# Celery: eager with an in-memory broker unless CELERY_BROKER_URL names a real one.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "memory://")
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND") or None
CELERY_TASK_ALWAYS_EAGER = env_bool(
    "CELERY_TASK_ALWAYS_EAGER", CELERY_BROKER_URL.startswith("memory://")
)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Redis gives a task's message to another worker when it was not acknowledged
# within this many seconds (the worker running it died): longer than any task.
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", 3600))
}
# Every periodic job of the programme, on its default time (README, "Celery in
# production"); change one with overrides=, leave one out with exclude=.
CELERY_BEAT_SCHEDULE = {
    **loyalty_beat_schedule(),
    # Files of restricted collections kept private after changes no signal
    # reports (Wagtail's bulk "Add to collection", a moved collection).
    "members-place-gated-media": {
        "task": "wagtail_members.place_all_files",
        "schedule": crontab(minute="*/10"),
    },
}

# Members' messages by e-mail, and the example text-message backend, which writes
# what it would send to the log (README, "Messages to members").
OSCAR_LOYALTY_NOTIFICATION_CHANNELS = (
    "oscar_loyalty.notifications.EmailChannel",
    "oscar_loyalty.notifications.LoggingChannel",
)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {
        "oscar_loyalty": {"handlers": ["console"], "level": "INFO"},
        "wagtail_members": {"handlers": ["console"], "level": "INFO"},
    },
}
