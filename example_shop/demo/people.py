"""People: the shipping country, the staff logins and five shoppers with addresses.

Users are found again by username and left as they are (a changed password stays
changed); the editor joins Wagtail's "Editors" group, which Wagtail's own migrations
create with the ``wagtailadmin.access_admin`` permission and edit rights on the page
tree. Each shopper gets one address in their address book, reused by every order.
"""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from oscar.core.loading import get_model

from . import ADMIN, EDITOR, SHOPPERS

Country = get_model("address", "Country")
UserAddress = get_model("address", "UserAddress")

EDITORS_GROUP = "Editors"

CHINA = {
    "iso_3166_1_a2": "CN",
    "iso_3166_1_a3": "CHN",
    "iso_3166_1_numeric": "156",
    "printable_name": "China",
    "name": "People's Republic of China",
    "display_order": 1,
}

# Per shopper username: the saved shipping address (Oscar's "line4" is the city).
ADDRESSES = {
    "mei": {
        "line1": "88 Nanjing West Road, Apt 1203",
        "line4": "Shanghai",
        "state": "Shanghai",
        "postcode": "200040",
        "phone_number": "+8613800138001",
    },
    "wei": {
        "line1": "17 Dongsi North Street",
        "line4": "Beijing",
        "state": "Beijing",
        "postcode": "100007",
        "phone_number": "+8613800138002",
    },
    "li": {
        "line1": "210 Longjing Road",
        "line4": "Hangzhou",
        "state": "Zhejiang",
        "postcode": "310013",
        "phone_number": "+8613800138003",
    },
    "chen": {
        "line1": "45 Tianhe Road, Room 806",
        "line4": "Guangzhou",
        "state": "Guangdong",
        "postcode": "510620",
        "phone_number": "+8613800138004",
    },
    "zhang": {
        "line1": "9 Kuanzhai Alley",
        "line4": "Chengdu",
        "state": "Sichuan",
        "postcode": "610031",
        "phone_number": "+8613800138005",
    },
}


def load_country(report):
    """China must exist and be a shipping country, or Oscar's checkout has nowhere
    to ship to (the address form offers shipping countries only)."""
    country = Country.objects.filter(iso_3166_1_a2="CN").first()
    if country is None:
        Country.objects.create(is_shipping_country=True, **CHINA)
        report.created("countries", "CN")
    elif not country.is_shipping_country:
        country.is_shipping_country = True
        country.save(update_fields=["is_shipping_country"])
        report.updated("countries", "CN (now a shipping country)")
    else:
        report.reused("countries", "CN")


def _user(report, demo, **flags):
    """Find the demo user by username, or create it with its password and flags."""
    User = get_user_model()
    user = User.objects.filter(username=demo.username).first()
    if user is not None:
        report.reused("users", demo.email)
        return user
    user = User(
        username=demo.username,
        email=demo.email,
        first_name=demo.first_name,
        last_name=demo.last_name,
        is_active=True,
        **flags,
    )
    user.set_password(demo.password)
    user.save()
    report.created("users", demo.email)
    return user


def _editors_group():
    """Wagtail's "Editors" group; recreated with admin access if someone deleted it.
    Editors may also translate pages ("Translate" in the admin: the member pages
    are in English and Simplified Chinese)."""
    group, created = Group.objects.get_or_create(name=EDITORS_GROUP)
    if created:
        group.permissions.add(
            Permission.objects.get(
                content_type__app_label="wagtailadmin", codename="access_admin"
            )
        )
    translate = Permission.objects.filter(
        content_type__app_label="simple_translation", codename="submit_translation"
    ).first()
    if translate is not None:
        group.permissions.add(translate)
    return group


def load_people(report):
    """Create the country, the admin, the editor and the shoppers; return shoppers.

    Returns ``{username: (user, address)}`` for the order histories.
    """
    report.start("People")
    load_country(report)
    china = Country.objects.get(iso_3166_1_a2="CN")

    _user(report, ADMIN, is_staff=True, is_superuser=True)
    editor = _user(report, EDITOR)
    group = _editors_group()
    if not editor.groups.filter(pk=group.pk).exists():
        editor.groups.add(group)
        report.created("group memberships", f"{EDITOR.email} in {group.name}")
    else:
        report.reused("group memberships", f"{EDITOR.email} in {group.name}")

    shoppers = {}
    for demo in SHOPPERS:
        user = _user(report, demo)
        address = user.addresses.order_by("pk").first()
        if address is None:
            address = UserAddress.objects.create(
                user=user,
                first_name=demo.first_name,
                last_name=demo.last_name,
                country=china,
                is_default_for_shipping=True,
                is_default_for_billing=True,
                **ADDRESSES[demo.username],
            )
            report.created("addresses", f"{demo.email}: {address.line4}")
        else:
            report.reused("addresses", f"{demo.email}: {address.line4}")
        shoppers[demo.username] = (user, address)
    report.finish_section()
    return shoppers
