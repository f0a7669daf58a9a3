"""The catalogue: five categories and thirty products of a tea and ceramics shop.

Products are found again by UPC, stock records by (partner, SKU), categories through
Oscar's ``create_from_breadcrumbs`` (which reuses existing nodes), so a second run
adds nothing. Existing prices, stock and texts are left alone: the demo never
overwrites what someone changed in the dashboard.
"""

import random
from decimal import Decimal

from django.core.files.base import ContentFile
from oscar.core.loading import get_class, get_model

from .images import render_product_image

Category = get_model("catalogue", "Category")
Partner = get_model("partner", "Partner")
Product = get_model("catalogue", "Product")
ProductCategory = get_model("catalogue", "ProductCategory")
ProductClass = get_model("catalogue", "ProductClass")
ProductImage = get_model("catalogue", "ProductImage")
StockRecord = get_model("partner", "StockRecord")
create_from_breadcrumbs = get_class("catalogue.categories", "create_from_breadcrumbs")

CURRENCY = "CNY"
PARTNER_NAME = "Lotus & Co. warehouse"
PRODUCT_CLASS_NAME = "Tea and teaware"

# (style key for the picture, category name, UPC prefix)
CATEGORIES = (
    ("green", "Green tea", "LC-GT"),
    ("oolong", "Oolong & black tea", "LC-OB"),
    ("teaware", "Teaware", "LC-TW"),
    ("ceramics", "Ceramics", "LC-CE"),
    ("gifts", "Gifts", "LC-GF"),
)

# Per category: (title, price in yuan, description).
PRODUCTS = {
    "green": (
        (
            "West Lake Longjing, spring harvest, 100 g",
            "168.00",
            "Flat, jade-green leaves from the hills around Hangzhou's West Lake, "
            "picked before Qingming and pan-fired by hand. Sweet chestnut aroma and a "
            "clean, lingering finish.",
        ),
        (
            "Biluochun, 100 g",
            "128.00",
            "Tightly curled downy buds from Dongting Mountain by Lake Tai. Fruity and "
            "floral; brew it cooler than you think, at about 75 °C.",
        ),
        (
            "Huangshan Maofeng, 100 g",
            "98.00",
            "A gentle everyday green tea from the Yellow Mountains with orchid notes "
            "and a soft, sweet aftertaste.",
        ),
        (
            "Jasmine Silver Needle, 100 g",
            "138.00",
            "Green tea buds scented seven times with fresh jasmine blossom in Fujian. "
            "Fragrant, smooth and never bitter.",
        ),
        (
            "Taiping Houkui, 50 g",
            "188.00",
            "Long, flat leaves pressed by hand in Anhui. A mellow, orchid-scented cup "
            "that stands up to several infusions.",
        ),
        (
            "Everyday green tea sachets, 20 bags",
            "38.00",
            "Whole-leaf green tea in biodegradable pyramid bags for the office or the "
            "road.",
        ),
    ),
    "oolong": (
        (
            "Anxi Tieguanyin, 125 g",
            "148.00",
            "The 'Iron Goddess' oolong from Anxi, lightly oxidised and rolled into "
            "tight pearls. Creamy and floral, with a long sweet finish.",
        ),
        (
            "Wuyi Da Hong Pao rock oolong, 100 g",
            "268.00",
            "Charcoal-roasted rock tea from the cliffs of the Wuyi Mountains: "
            "mineral, toasty and deep. Made for gongfu brewing.",
        ),
        (
            "Phoenix Dancong Honey Orchid, 100 g",
            "218.00",
            "Single-trunk oolong from Chaozhou's Phoenix Mountain with a striking "
            "honey and orchid fragrance.",
        ),
        (
            "Keemun black tea, 100 g",
            "88.00",
            "Classic Qimen black tea from Anhui: malty, with a hint of cocoa and "
            "dried fruit. Good with or without milk.",
        ),
        (
            "Dianhong golden buds, 100 g",
            "118.00",
            "Golden-tipped black tea from Yunnan. Sweet potato and honey notes, a "
            "gentle cup even when brewed strong.",
        ),
        (
            "Lapsang Souchong, 100 g",
            "78.00",
            "Pine-smoked black tea from Tongmu in the Wuyi Mountains, the original "
            "smoky tea.",
        ),
    ),
    "teaware": (
        (
            "Yixing clay teapot, 200 ml",
            "680.00",
            "Hand-made from purple zisha clay in Yixing. Unglazed, so it seasons with "
            "use; keep it for one family of teas.",
        ),
        (
            "White porcelain gaiwan, 150 ml",
            "88.00",
            "The lidded bowl for brewing every kind of tea. Thin-walled porcelain "
            "from Dehua.",
        ),
        (
            "Glass fairness pitcher, 250 ml",
            "58.00",
            "Heat-resistant glass pitcher that evens out each infusion before it is "
            "poured into cups.",
        ),
        (
            "Bamboo tea tray with drainer",
            "298.00",
            "A slatted bamboo tray with a hidden water drawer for gongfu tea at home.",
        ),
        (
            "Gongfu tea set for two",
            "1280.00",
            "A celadon gaiwan, pitcher, two cups, strainer and bamboo tray in a "
            "fitted wooden case. Everything you need to start.",
        ),
        (
            "Bamboo tea tools, set of six",
            "68.00",
            "Scoop, tongs, pick, funnel, spoon and holder, turned from one piece of "
            "bamboo.",
        ),
    ),
    "ceramics": (
        (
            "Longquan celadon tea bowl",
            "198.00",
            "A jade-green celadon bowl from the kilns of Longquan, Zhejiang. Each "
            "glaze crackles a little differently.",
        ),
        (
            "Jingdezhen blue-and-white cups, pair",
            "168.00",
            "Two hand-painted cups with a lotus scroll, from the porcelain capital "
            "of Jingdezhen.",
        ),
        (
            "Jian ware tenmoku cup",
            "380.00",
            "Dark iron glaze with 'hare's fur' streaks, fired in Jianyang, Fujian, as "
            "it has been since the Song dynasty.",
        ),
        (
            "Ru ware cup, sky blue",
            "260.00",
            "A soft sky-blue glaze after the imperial Ru kilns of Henan, with a fine "
            "crackle that darkens as you use it.",
        ),
        (
            "Hand-thrown stoneware vase",
            "420.00",
            "A small ash-glazed vase for a single branch, thrown and wood-fired by a "
            "studio potter in Jingdezhen.",
        ),
        (
            "Ceramic incense holder",
            "68.00",
            "A lotus-leaf incense holder in matte white glaze for sticks and cones.",
        ),
    ),
    "gifts": (
        (
            "Mid-Autumn tea gift box",
            "388.00",
            "Longjing, Tieguanyin and Keemun in three lacquered tins, with two "
            "celadon cups. Gift-wrapped with a handwritten card.",
        ),
        (
            "Tea tasting sampler, eight teas",
            "158.00",
            "Eight 10 g pouches from green to black, with tasting notes and brewing "
            "guides. The best way to find your tea.",
        ),
        (
            "Silk tea caddy pouch",
            "48.00",
            "A padded brocade pouch that keeps a tea caddy or a small teapot safe on "
            "the road.",
        ),
        (
            "Lotus tin tea caddy",
            "58.00",
            "An airtight double-lid tin printed with our lotus pattern. Holds 100 g "
            "of rolled or 50 g of twisted tea.",
        ),
        (
            "Spring Festival hamper",
            "880.00",
            "Da Hong Pao, Dancong, Dianhong and jasmine tea with a Jingdezhen cup "
            "pair and a bamboo tray, in a red gift box.",
        ),
        (
            "Linen tea towels, set of two",
            "78.00",
            "Absorbent natural linen cloths for the tea table, dyed with indigo.",
        ),
    ),
}


def product_specs():
    """Yield (upc, category style key, category name, title, price, description)."""
    for key, category_name, prefix in CATEGORIES:
        for number, (title, price, description) in enumerate(PRODUCTS[key], 1):
            upc = f"{prefix}-{number:02d}"
            yield upc, key, category_name, title, Decimal(price), description


def _get_or_create(report, kind, model, label, lookup, defaults=None):
    obj, created = model.objects.get_or_create(**lookup, defaults=defaults or {})
    (report.created if created else report.reused)(kind, label)
    return obj


def load_catalogue(report):
    """Create (or find) the partner, product class, categories, products and stock."""
    report.start("Catalogue")
    partner = _get_or_create(
        report, "partners", Partner, PARTNER_NAME, {"name": PARTNER_NAME}
    )
    product_class = _get_or_create(
        report,
        "product classes",
        ProductClass,
        PRODUCT_CLASS_NAME,
        {"name": PRODUCT_CLASS_NAME},
        {"requires_shipping": True, "track_stock": True},
    )

    categories = {}
    for key, name, _prefix in CATEGORIES:
        existed = Category.objects.filter(depth=1, name=name).exists()
        categories[key] = create_from_breadcrumbs(name)
        (report.reused if existed else report.created)("categories", name)

    for upc, key, _category_name, title, price, description in product_specs():
        product = Product.objects.filter(upc=upc).first()
        if product is None:
            product = Product.objects.create(
                upc=upc,
                title=title,
                description=f"<p>{description}</p>",
                product_class=product_class,
                structure=Product.STANDALONE,
                is_public=True,
            )
            report.created("products", f"{upc} {title}")
        else:
            report.reused("products", f"{upc} {title}")

        ProductCategory.objects.get_or_create(product=product, category=categories[key])

        rng = random.Random(f"lotus-demo-stock-{upc}")
        _get_or_create(
            report,
            "stock records",
            StockRecord,
            upc,
            {"partner": partner, "partner_sku": upc},
            {
                "product": product,
                "price_currency": CURRENCY,
                "price": price,
                # Plenty: the order histories allocate and consume some of it.
                "num_in_stock": rng.randrange(200, 501, 10),
                "low_stock_threshold": 10,
            },
        )

        if product.images.exists():
            report.reused("images", upc)
        else:
            image = ProductImage(product=product, caption=title, display_order=0)
            image.original.save(
                f"{upc.lower()}.jpg",
                ContentFile(render_product_image(upc, title, key)),
                save=True,
            )
            report.created("images", image.original.name)
    report.finish_section()
