"""The Wagtail page tree and both Site records.

Wagtail's migrations leave a plain "Welcome to your new Wagtail site!" page as the
default site's root. The demo puts the shop's ``HomePage`` in its place (a child of
the tree's root node), points the default Wagtail Site at it and deletes the welcome
page, then adds the "Members' Club" ``MemberHomePage`` at /members/. Pages that
exist are found again by type and slug and left as editors made them.
"""

from datetime import timedelta

from django.conf import settings
from django.contrib.sites.models import Site as DjangoSite
from django.utils import timezone
from wagtail.models import Page, PageViewRestriction, Site
from wagtail.rich_text import RichText

from example_shop.models import HomePage
from oscar_loyalty.models import Tier
from wagtail_members.models import (
    ArticlePage,
    BenefitCataloguePage,
    BenefitPage,
    CommunityIndexPage,
    EventPage,
    MemberHomePage,
    RewardCataloguePage,
    StoryPage,
)

from .media import IMAGE_ALT, figure, gold_tasting_image

SITE_NAME = "Lotus & Co."
HOSTNAME = "127.0.0.1"
PORT = 8000
MEMBERS_SLUG = "members"
LOGIN_PATH = "/shop/accounts/login/"

HOME_INTRO = (
    "<p>Green tea from the hills of Hangzhou and Anhui, oolongs from Anxi and the "
    "Wuyi Mountains, and ceramics from the kilns of Jingdezhen and Longquan: chosen "
    "by people who drink tea every day.</p>"
)
MEMBERS_INTRO = (
    "<p>Earn points on every order, climb from Regular to Diamond and enjoy member "
    "benefits that grow with you. Every account is a member from its first "
    "order.</p>"
)


def home_body(members_page):
    return [
        ("heading", "Fresh from this spring's harvest"),
        (
            "paragraph",
            RichText(
                "<p>Our green teas are picked before Qingming and packed in small "
                "tins so they reach you fresh. Oolongs and black teas come from "
                "families we have bought from for years, roasted the way they "
                "always have.</p>"
            ),
        ),
        ("heading", "Teaware for every table"),
        (
            "paragraph",
            RichText(
                "<p>From a first <b>gaiwan</b> to a hand-made Yixing teapot, and "
                "celadon, Ru and Jian ware cups to drink from.</p>"
            ),
        ),
        (
            "call_to_action",
            {
                "title": "Join the Members' Club",
                "text": "One point for every yuan you spend, tiers with benefits "
                "that grow with you, and points that last a year.",
                "button_label": "How it works",
                "page": members_page,
                "url": "",
            },
        ),
    ]


MEMBERS_BODY = [
    ("heading", "How it works"),
    (
        "paragraph",
        RichText(
            "<ul><li>Earn <b>1 point for every ¥1</b> you spend in the shop.</li>"
            "<li>Your points and your history are in your account, next to your "
            "orders.</li>"
            "<li>Points expire <b>12 months</b> after you earn them, oldest first; "
            "we remind you before any expire.</li></ul>"
        ),
    ),
    ("heading", "Four tiers"),
    (
        "paragraph",
        RichText(
            "<p>Your tier follows what you have spent with us:</p>"
            "<ul><li><b>Regular</b>: from your first order</li>"
            "<li><b>Silver</b>: from ¥1,000 spent</li>"
            "<li><b>Gold</b>: from ¥4,000 spent</li>"
            "<li><b>Diamond</b>: from ¥10,000 spent</li></ul>"
            "<p>Each tier keeps every benefit of the tiers below it and adds its "
            "own. You move up as soon as you cross a threshold.</p>"
        ),
    ),
    (
        "call_to_action",
        {
            "title": "Start earning today",
            "text": "Sign in or create an account: every order you place earns "
            "points from day one.",
            "button_label": "Sign in or register",
            "page": None,
            "url": LOGIN_PATH,
        },
    ),
]


def _wagtail_welcome_page():
    """The placeholder Wagtail's migrations make the default site's root: a plain
    ``Page`` without children. Anything else an editor made is never touched."""
    site = Site.objects.filter(is_default_site=True).select_related("root_page")
    page = site[0].root_page if site else None
    if page is None or page.specific_class is not Page or page.numchild:
        return None
    return page


def load_pages(report):
    """Create the home and members pages, and point both Site records at the shop."""
    report.start("Pages and sites")
    root = Page.get_first_root_node()
    placeholder = _wagtail_welcome_page()

    home = HomePage.objects.first()
    home_is_new = home is None
    if home_is_new:
        if placeholder is not None:
            # Free the slug "home" for the new page; the placeholder is deleted
            # once the Site no longer points at it (Site.root_page cascades).
            Page.objects.filter(pk=placeholder.pk).update(
                slug=f"wagtail-welcome-{placeholder.pk}"
            )
        home = root.add_child(
            instance=HomePage(title=SITE_NAME, slug="home", intro=HOME_INTRO)
        )
        report.created("pages", f"{home.title} (home page)")
    else:
        report.reused("pages", f"{home.title} (home page)")

    members = (
        home.get_children().filter(slug=MEMBERS_SLUG).specific().first()
        or MemberHomePage.objects.descendant_of(home).first()
    )
    if members is None:
        members = home.add_child(
            instance=MemberHomePage(
                title="Members' Club",
                slug=MEMBERS_SLUG,
                intro=MEMBERS_INTRO,
                body=MEMBERS_BODY,
            )
        )
        members.save_revision().publish()
        report.created("pages", f"{members.title} (slug {members.slug!r})")
    else:
        report.reused("pages", f"{members.title} (slug {members.slug!r})")

    _load_catalogues(report, members)
    _load_community(report, members)

    if home_is_new:
        # The body links to the members page, so it is written once that exists.
        home.body = home_body(members)
        home.save_revision().publish()

    _load_wagtail_site(report, home)
    if placeholder is not None and placeholder.pk != home.pk:
        placeholder.delete()
        report.add("pages", "deleted", placeholder.title)
    _load_translations(report, home)
    _load_django_site(report)
    report.finish_section()
    return home, members


BENEFITS_INTRO = (
    "<p>What each tier gets, side by side. The table follows the programme as it "
    "is today; every tier keeps the benefits of the tiers below it.</p>"
)
#: slug, title, summary, minimum tier ("" for every member), body paragraph.
BENEFIT_PAGES = (
    (
        "birthday-treat",
        "Birthday treat",
        "A ¥20 coupon in the week of your birthday, every year.",
        "",
        "<p>Tell us your birthday on the Loyalty tab of your account and a coupon "
        "arrives a few days before it, valid for a month.</p>",
    ),
    (
        "free-shipping",
        "Free shipping",
        "Every order ships free, whatever its size.",
        "gold",
        "<p>From Gold on, standard delivery is on us on every order.</p>",
    ),
    (
        "spring-tasting",
        "Spring tasting evenings",
        "Taste this year's first-flush teas with our buyers, in Hangzhou.",
        "gold",
        "<p>Each April our buyers bring the new Long Jing and Huangshan Mao Feng "
        "back from the hills. Gold and Diamond members are invited to taste them "
        "with us before they reach the shop: write to us for a seat.</p>",
    ),
)
#: The benefit pages only the tiers they are for may open (Wagtail privacy on
#: those tiers' groups).
GATED = {"spring-tasting": "gold"}
REWARDS_INTRO = (
    "<p>Spend your points on coupons for the shop. A reward is yours as soon as "
    "you redeem it: find its code under My coupons.</p>"
)


def _child(parent, page_class, slug):
    return parent.get_children().filter(slug=slug).type(page_class).specific().first()


def _section(report, parent, page_class, slug, **fields):
    """The ``page_class`` page ``slug`` under ``parent``: found again, or made and
    published with ``fields``."""
    page = _child(parent, page_class, slug)
    if page is not None:
        report.reused("pages", f"{page.title} (slug {slug!r})")
        return page
    page = parent.add_child(instance=page_class(slug=slug, **fields))
    page.save_revision().publish()
    report.created("pages", f"{page.title} (slug {slug!r})")
    return page


def _load_catalogues(report, members):
    """The benefit catalogue with its benefit pages (one for Gold and above only)
    and the reward catalogue, under the members page."""
    benefits = _section(
        report,
        members,
        BenefitCataloguePage,
        "benefits",
        title="Tier benefits",
        intro=BENEFITS_INTRO,
    )
    for slug, title, summary, minimum_tier, paragraph in BENEFIT_PAGES:
        if _child(benefits, BenefitPage, slug) is not None:
            report.reused("pages", title)
            continue
        page = benefits.add_child(
            instance=BenefitPage(
                title=title,
                slug=slug,
                summary=summary,
                minimum_tier=minimum_tier,
                body=[("paragraph", RichText(paragraph))],
            )
        )
        page.save_revision().publish()
        if slug in GATED:
            _restrict_to_tier(page, GATED[slug])
        report.created("pages", title)
    _section(
        report,
        members,
        RewardCataloguePage,
        "rewards",
        title="Rewards",
        intro=REWARDS_INTRO,
    )


GOLD_CAPTION = "Last spring's Gold evening: five rock teas, one farmer, twelve seats."

COMMUNITY_INTRO = (
    "<p>Tea notes from our buyers, member days and stories from members. Some "
    "posts are for members only, some for the higher tiers.</p>"
)


def _community_posts(now, gold_image):
    """(class, slug, fields, audience): audience None (everyone), "members" or a
    tier code (that tier and those above)."""
    return (
        (ArticlePage, "brewing-oolong-gongfu-style", {
            "title": "Brewing oolong gongfu style",
            "summary": "Small pot, short steeps, many infusions: how our buyers "
            "brew Tieguanyin.",
            "body": [("paragraph", RichText(
                "<p>Warm the pot, rinse the leaves once, then steep for ten "
                "seconds and add five seconds each time. A good Tieguanyin gives "
                "six or seven infusions.</p>"))],
        }, None),
        (EventPage, "members-day-spring", {
            "title": "Members' day: the spring harvest",
            "summary": "Taste the first Long Jing of the year in our Hangzhou shop.",
            "starts_at": now + timedelta(days=21),
            "ends_at": now + timedelta(days=21, hours=3),
            "place": "Lotus & Co., 18 Hefang Street, Hangzhou",
            "body": [("paragraph", RichText(
                "<p>Every member is welcome: bring a friend.</p>"))],
        }, "members"),
        (EventPage, "gold-tasting-wuyi", {
            "title": "Gold evening: Wuyi rock teas",
            "summary": "A guided tasting of five yancha with the farmer who made "
            "them.",
            "starts_at": now + timedelta(days=35),
            "place": "Lotus & Co. tasting room, Hangzhou",
            "body": [
                ("paragraph", RichText(
                    "<p>Twelve seats, for Gold and Diamond members.</p>")),
                figure(gold_image, IMAGE_ALT, GOLD_CAPTION),
            ],
        }, "gold"),
        (StoryPage, "my-first-gaiwan", {
            "title": "My first gaiwan",
            "summary": "How a white porcelain gaiwan changed my morning tea.",
            "author_name": "Mei",
            "body": [("paragraph", RichText(
                "<p>I used to brew in a mug. The gaiwan taught me to look at the "
                "leaves.</p>"))],
        }, "members"),
    )  # fmt: skip


def _load_community(report, members):
    """The community index with an article for everyone, a member day, a Gold
    evening and a member's story. Stories members send wait in Wagtail's default
    moderation workflow (the "Moderators" group) until an editor approves them."""
    index = _section(
        report,
        members,
        CommunityIndexPage,
        "community",
        title="Community",
        intro=COMMUNITY_INTRO,
        show_in_menus=True,
    )
    gold_image = gold_tasting_image(report, _tier_groups("gold"))
    for page_class, slug, fields, audience in _community_posts(
        timezone.now(), gold_image
    ):
        if _child(index, page_class, slug) is not None:
            report.reused("pages", fields["title"])
            continue
        page = index.add_child(instance=page_class(slug=slug, **fields))
        page.save_revision().publish()
        if audience == "members":
            PageViewRestriction.objects.create(
                page=page, restriction_type=PageViewRestriction.LOGIN
            )
        elif audience:
            _restrict_to_tier(page, audience)
        report.created("pages", fields["title"])


def _restrict_to_tier(page, code):
    """Privacy as an editor sets it: the groups of ``code``'s tier and those
    above it."""
    restriction = PageViewRestriction.objects.create(
        page=page, restriction_type=PageViewRestriction.GROUPS
    )
    restriction.groups.set(_tier_groups(code))


def _tier_groups(code):
    """The groups of ``code``'s tier and of the tiers above it."""
    tier = Tier.objects.get(code=code)
    return [
        higher.group
        for higher in Tier.objects.filter(rank__gte=tier.rank).select_related("group")
        if higher.group_id
    ]


CHINESE = "zh-hans"


def _chinese_fields(page, members_zh):
    """The Chinese copy of ``page`` (an English demo page), by type and slug."""
    from . import pages_zh as zh

    if isinstance(page, HomePage):
        return {**zh.HOME, "body": zh.home_body(members_zh)}
    if isinstance(page, MemberHomePage):
        return zh.MEMBERS
    if isinstance(page, BenefitCataloguePage):
        return zh.BENEFITS
    if isinstance(page, RewardCataloguePage):
        return zh.REWARDS
    if isinstance(page, CommunityIndexPage):
        return zh.COMMUNITY
    copy = {**zh.BENEFIT_PAGES, **zh.POSTS}.get(page.slug)
    if copy is None:
        return None
    own = ("paragraph", "figure_alt", "figure_caption")
    fields = {key: value for key, value in copy.items() if key not in own}
    fields["body"] = [("paragraph", RichText(copy["paragraph"]))]
    pictures = [
        block.value["image"] for block in page.body if block.block_type == "figure"
    ]
    if pictures and "figure_caption" in copy:
        fields["body"].append(
            figure(pictures[0], copy["figure_alt"], copy["figure_caption"])
        )
    return fields


def _load_translations(report, home):
    """The whole demo tree in Simplified Chinese: each page translated (Wagtail's
    "Translate": a copy in the zh-hans locale, with its privacy) and its copy
    written in Chinese. Pages translated already are left as editors made them."""
    from wagtail.models import Locale

    locale, _ = Locale.objects.get_or_create(language_code=CHINESE)
    members_zh = None
    home_is_new = home.get_translation_or_none(locale) is None
    for page in home.get_descendants(inclusive=True).specific().order_by("path"):
        translated = page.get_translation_or_none(locale)
        if translated is not None:
            report.reused("translated pages", translated.title)
            if isinstance(page, MemberHomePage):
                members_zh = translated
            continue
        fields = _chinese_fields(page, members_zh)
        if fields is None:  # an editor's own page: theirs to translate
            continue
        translated = page.copy_for_translation(locale).specific
        for name, value in fields.items():
            setattr(translated, name, value)
        translated.save_revision().publish()
        if isinstance(page, MemberHomePage):
            members_zh = translated
        report.created("translated pages", translated.title)
    home_zh = home.get_translation_or_none(locale)
    if home_is_new and home_zh is not None and members_zh is not None:
        # The home page's call to action links to the Chinese members page.
        home_zh = home_zh.specific
        home_zh.body = _chinese_fields(home, members_zh)["body"]
        home_zh.save_revision().publish()


def _load_wagtail_site(report, home):
    """The default Wagtail Site serves the home page; other hostnames fall back
    to it too, so 127.0.0.1:8000 is only what the admin shows."""
    wanted = {
        "hostname": HOSTNAME,
        "port": PORT,
        "site_name": SITE_NAME,
        "root_page_id": home.pk,
    }
    site = Site.objects.filter(is_default_site=True).first()
    if site is None:
        site = Site.objects.create(is_default_site=True, **wanted)
        report.created("Wagtail sites", str(site))
        return
    if site.root_page_id == home.pk:
        # Already set up (maybe renamed by someone since): leave it alone.
        report.reused("Wagtail sites", str(site))
        return
    clash = Site.objects.filter(hostname=HOSTNAME, port=PORT).exclude(pk=site.pk)
    if clash.exists():
        wanted.pop("hostname")
        wanted.pop("port")
    for field, value in wanted.items():
        setattr(site, field, value)
    site.save()
    report.updated("Wagtail sites", str(site))


def _load_django_site(report):
    """Django's sites framework names the shop in Oscar's e-mails and links."""
    site, created = DjangoSite.objects.get_or_create(
        pk=settings.SITE_ID,
        defaults={"domain": f"{HOSTNAME}:{PORT}", "name": SITE_NAME},
    )
    if created:
        report.created("Django sites", site.domain)
    elif (site.domain, site.name) == ("example.com", "example.com"):
        # Still Django's placeholder from its migrations: make it the shop.
        site.domain, site.name = f"{HOSTNAME}:{PORT}", SITE_NAME
        site.save()
        report.updated("Django sites", site.domain)
    else:
        report.reused("Django sites", site.domain)
