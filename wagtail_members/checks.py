"""System checks: each explains a wrong installation in one sentence, with its fix."""

from django.conf import settings
from django.core.checks import Error, Warning, register
from django.template import TemplateDoesNotExist
from django.template.loader import get_template

from .conf import PREFIX, get_setting

TAG = "loyalty"
AUTH_MIDDLEWARE = "django.contrib.auth.middleware.AuthenticationMiddleware"


@register(TAG)
def check_installation(app_configs=None, **kwargs):
    errors = []
    apps = list(settings.INSTALLED_APPS)
    wagtail_index = next(
        (
            i
            for i, app in enumerate(apps)
            if app == "wagtail" or app.startswith("wagtail.apps.")
        ),
        None,
    )
    if wagtail_index is None:
        errors.append(
            Error(
                "wagtail_members needs Wagtail: install django-oscar-loyalty[wagtail] "
                "and add 'wagtail' and its contrib apps to INSTALLED_APPS.",
                id="wagtail_members.E001",
            )
        )
    else:
        own = next(
            (i for i, app in enumerate(apps) if app.startswith("wagtail_members")),
            None,
        )
        if own is not None and own > wagtail_index:
            errors.append(
                Error(
                    "wagtail_members must come before 'wagtail' in INSTALLED_APPS, or "
                    "its hooks run after Wagtail's privacy check.",
                    hint="Move 'wagtail_members.apps.WagtailMembersConfig' up.",
                    id="wagtail_members.E002",
                )
            )
    if AUTH_MIDDLEWARE not in settings.MIDDLEWARE:
        errors.append(
            Error(
                "AuthenticationMiddleware is missing from MIDDLEWARE, so member pages "
                "cannot tell who is signed in.",
                id="wagtail_members.E003",
            )
        )
    if not getattr(settings, "WAGTAIL_FRONTEND_LOGIN_URL", None):
        errors.append(
            Warning(
                "WAGTAIL_FRONTEND_LOGIN_URL is not set, so members who open a private "
                "page are sent to Wagtail's own login instead of the shop's.",
                hint="Include wagtail_members.urls and set WAGTAIL_FRONTEND_LOGIN_URL "
                "= reverse_lazy('wagtail_members:join').",
                id="wagtail_members.W004",
            )
        )
    if _login_url_is_the_join_view():
        errors.append(
            Error(
                "LOGIN_URL points at wagtail_members' join view, which sends visitors "
                "to LOGIN_URL: they would go round in circles.",
                hint="Set LOGIN_URL to the shop's login (Oscar's customer:login) and "
                "WAGTAIL_FRONTEND_LOGIN_URL to wagtail_members:join.",
                id="wagtail_members.E006",
            )
        )
    if not _storage_keeps_gated_files_private():
        errors.append(
            Warning(
                "The default storage serves every image and document file from public "
                "media, so the files of a collection restricted to members (or to a "
                "tier) can be fetched by anyone who has their address.",
                hint="Use wagtail_members.storage.GatedFileSystemStorage as "
                "STORAGES['default'] (or silence this warning if no collection is "
                "restricted).",
                id="wagtail_members.W007",
            )
        )
    base = get_setting("BASE_TEMPLATE")
    try:
        get_template(base)
    except TemplateDoesNotExist:
        errors.append(
            Error(
                f"{PREFIX}BASE_TEMPLATE names {base!r}, which no template loader "
                "finds, so member pages cannot render.",
                hint="Create that template or point the setting at your site's base.",
                id="wagtail_members.E005",
            )
        )
    return errors


def _storage_keeps_gated_files_private():
    from django.core.files.storage import default_storage

    from .storage import keeps_files_private

    return keeps_files_private(default_storage)


def _login_url_is_the_join_view():
    from django.shortcuts import resolve_url
    from django.urls import NoReverseMatch, Resolver404, resolve, reverse

    try:
        login = resolve(resolve_url(settings.LOGIN_URL).split("?", 1)[0])
        return login.func == resolve(reverse("wagtail_members:join")).func
    except (NoReverseMatch, Resolver404):
        return False
