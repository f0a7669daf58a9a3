"""Which earn rules apply to which products, in a fixed number of queries.

Oscar answers "is this product in that range?" one product and one range at a time
(``Range.contains_product``: a query or more each). An order, a basket or a product
page asks it for every line and every active rule, so this module asks the database
once for all of them instead:

1. one query for the rules active at the moment (:func:`active_rules`);
2. one yes/no column per rule's range on a query that reads the rows anyway (the
   order's lines) or on one query over the products (:func:`annotate_rules`),
   computed in SQL by the same membership rules as Oscar's
   ``Range.product_queryset`` (:func:`_range_membership`).

The number of queries therefore does not grow with the number of lines, products,
rules or the member's history; placing an order costs one more query than without
earn rules (reading the rules). The only exception is a range backed by a custom
``proxy_class``, whose membership is code Oscar cannot express in SQL: it costs one
more query per such rule, through the proxy's own ``all_products()``.

The arithmetic lives in :mod:`oscar_loyalty.earning` (pure); this module only reads.
"""

from decimal import Decimal

from django.db.models import BooleanField, Case, Exists, OuterRef, Q, Value, When
from django.utils import timezone
from oscar.core.loading import get_model

from . import earning
from .conf import loyalty_settings
from .models import Campaign, EarnRule, Member

Product = get_model("catalogue", "Product")
ProductCategory = get_model("catalogue", "ProductCategory")
Range = get_model("offer", "Range")

#: Where a request keeps what it already looked up (one product page, one basket).
REQUEST_CACHE = "_oscar_loyalty_rules"


def active_rules(at=None, *, tier_rank=None, segments=None):
    """Earn rules in force at ``at`` (now by default) for a member of the tier of
    rank ``tier_rank`` (None: no tier), best multiplier first.

    Active, started (``starts_at`` ≤ ``at``) and not yet ended (``at`` < ``ends_at``);
    a rule without dates runs until it is switched off. A bonus-points campaign's
    rule applies only to its audience: its tiers, when it names any, and its
    segments, when it names any (``segments``: a callable giving the member's
    segment codes, called only then). One query, and a second only while a
    campaign's rule is in force (its audience).
    """
    at = at or timezone.now()
    rules = list(
        EarnRule.objects.filter(is_active=True)
        .filter(Q(starts_at__isnull=True) | Q(starts_at__lte=at))
        .filter(Q(ends_at__isnull=True) | Q(ends_at__gt=at))
        .select_related("range", "campaign")
        .order_by("-multiplier", "id")
    )
    campaign_of = {rule.pk: _campaign_id(rule) for rule in rules}
    campaign_ids = {pk for pk in campaign_of.values() if pk is not None}
    if not campaign_ids:
        return rules
    audience = {}
    for campaign_id, wanted, rank in Campaign.objects.filter(
        pk__in=campaign_ids
    ).values_list("pk", "segments", "tiers__rank"):
        ranks, _wanted = audience.setdefault(campaign_id, (set(), set(wanted or ())))
        if rank is not None:
            ranks.add(rank)
    found = []

    def member_segments():
        if not found:
            found.append(set(segments() if segments is not None else ()))
        return found[0]

    return [
        rule
        for rule in rules
        if campaign_of[rule.pk] is None
        or in_campaign_audience(
            *audience[campaign_of[rule.pk]], tier_rank, member_segments
        )
    ]


def in_campaign_audience(ranks, segments, tier_rank, member_segments):
    """Whether a member is in a campaign's audience: of one of its tiers
    (``ranks``; any when empty) and in one of its ``segments`` (any when empty;
    ``member_segments`` is called only then)."""
    if ranks and tier_rank not in ranks:
        return False
    return not segments or bool(segments & member_segments())


def _campaign_id(rule):
    """The id of the campaign whose rule this is, or None (an owner's rule)."""
    try:
        return rule.campaign.pk
    except Campaign.DoesNotExist:
        return None


def as_rule(earn_rule):
    """The pure :class:`earning.Rule` for an ``EarnRule`` row, frozen now."""
    return earning.Rule(earn_rule.code, earn_rule.version, earn_rule.multiplier)


def _through(field_name):
    """The table behind one of ``Range``'s many-to-many fields, and its two columns."""
    field = Range._meta.get_field(field_name)
    return (
        field.remote_field.through,
        field.m2m_field_name(),
        field.m2m_reverse_field_name(),
    )


def _linked(field_name, range_id, *outer_fields):
    """EXISTS: the range's ``field_name`` holds one of the outer product's fields.

    With the product's id and ``parent_id`` this asks "is the product, or its
    parent, listed", which is how Oscar treats child products.
    """
    through, range_column, target_column = _through(field_name)
    either = Q()
    for outer in outer_fields:
        either |= Q(**{target_column: OuterRef(outer)})
    return Exists(through.objects.filter(either, **{range_column: range_id}))


def _in_categories(field_name, range_id, prefix):
    """EXISTS: the product or its parent is in one of the range's categories.

    Including every descendant of those categories, as Oscar's
    ``ExpandDownwardsCategoryQueryset`` does: a category's descendants are the
    categories whose materialised ``path`` starts with its own.
    """
    through, range_column, target_column = _through(field_name)
    # The product's (or its parent's) categories at or below one range category;
    # two levels up is the outer row, one level up the range's category.
    product_categories = ProductCategory.objects.filter(
        Q(product_id=OuterRef(OuterRef(f"{prefix}id")))
        | Q(product_id=OuterRef(OuterRef(f"{prefix}parent_id"))),
        category__path__startswith=OuterRef(f"{target_column}__path"),
    )
    range_categories = through.objects.filter(
        Exists(product_categories), **{range_column: range_id}
    )
    return Exists(range_categories)


def _range_membership(product_range, prefix=""):
    """A SQL condition on a row: "this product is in ``product_range``".

    ``prefix`` leads from the row to the product (``"product__"`` for order and
    basket lines, nothing for products). Mirrors Oscar's ``Range.product_queryset``:

    * a range with ``includes_all_products`` holds every product except those
      listed as excluded (the product itself) and those in an excluded category or
      its descendants (the product's or its parent's categories);
    * otherwise a product is in when it or its parent is an included product, its
      or its parent's product class is included, or it or its parent is in an
      included category or a descendant; and it is out when it or its parent is an
      excluded product. Excluded categories only apply to the first kind, as in
      Oscar.
    """
    range_id = product_range.pk
    own, parent = f"{prefix}id", f"{prefix}parent_id"
    if product_range.includes_all_products:
        return ~_linked("excluded_products", range_id, own) & ~_in_categories(
            "excluded_categories", range_id, prefix
        )
    included = (
        _linked("included_products", range_id, own, parent)
        | _linked(
            "classes",
            range_id,
            f"{prefix}product_class_id",
            f"{prefix}parent__product_class_id",
        )
        | _in_categories("included_categories", range_id, prefix)
    )
    return included & ~_linked("excluded_products", range_id, own, parent)


def _column(range_id):
    return f"loyalty_in_range_{range_id}"


def annotate_ranges(queryset, ranges, *, product_field=None):
    """``queryset`` with a yes/no column per range: does it hold the row's product.

    Rows are products, or rows with a foreign key ``product_field`` to one (order or
    basket lines), so the lines' own query answers for every rule at no extra cost.
    Ranges with a custom ``proxy_class`` get no column: see :func:`rules_of`.
    """
    prefix = f"{product_field}__" if product_field else ""
    annotations = {
        _column(product_range.pk): Case(
            When(_range_membership(product_range, prefix), then=Value(True)),
            default=Value(False),
            output_field=BooleanField(),
        )
        for product_range in ranges
        if not product_range.proxy_class
    }
    return queryset.annotate(**annotations) if annotations else queryset


def annotate_rules(queryset, rules, *, product_field=None):
    """:func:`annotate_ranges` for the ranges of ``rules`` (``active_rules()``)."""
    ranges = {rule.range for rule in rules}
    return annotate_ranges(queryset, ranges, product_field=product_field)


def rules_of(rows, rules, *, product_field=None):
    """``{row pk: earning.Rule}`` for rows of a queryset from :func:`annotate_rules`.

    The highest multiplier wins (ties: the older rule); rows in no rule, or without
    a product, are left out: they earn under :data:`earning.BASE`. A range backed
    by a custom ``proxy_class`` is asked through its ``all_products()``: one query
    per such rule.
    """
    product_of = {
        row.pk: (
            row.pk if product_field is None else getattr(row, f"{product_field}_id")
        )
        for row in rows
    }
    product_ids = {pk for pk in product_of.values() if pk is not None}
    proxied = {}
    for product_range in {rule.range for rule in rules}:
        if product_range.proxy_class and product_ids:
            in_range = product_range.all_products().filter(pk__in=product_ids)
            proxied[product_range.pk] = set(in_range.values_list("pk", flat=True))
    result = {}
    for row in rows:
        product_id = product_of[row.pk]
        if product_id is None:
            continue
        holding = [
            as_rule(rule)
            for rule in rules
            if (
                product_id in proxied[rule.range_id]
                if rule.range_id in proxied
                else getattr(row, _column(rule.range_id), False)
            )
        ]
        if holding:
            result[row.pk] = earning.best_rule(holding)
    return result


def products_in_ranges(product_ids, ranges):
    """``{range id: set of product ids}``: which of the products each range holds.

    One query for all ranges Oscar can describe in SQL, plus one per range backed
    by a custom ``proxy_class``.
    """
    product_ids = {pk for pk in product_ids if pk is not None}
    found = {product_range.pk: set() for product_range in ranges}
    if not product_ids or not ranges:
        return found
    products = annotate_ranges(
        Product.objects.filter(pk__in=product_ids).only("pk").order_by(), ranges
    )
    products = list(products)
    for product_range in ranges:
        if product_range.proxy_class:
            in_range = product_range.all_products().filter(pk__in=product_ids)
            found[product_range.pk] = set(in_range.values_list("pk", flat=True))
            continue
        column = _column(product_range.pk)
        found[product_range.pk] = {p.pk for p in products if getattr(p, column)}
    return found


def rules_for_products(
    product_ids, *, at=None, rules=None, tier_rank=None, segments=None
):
    """``{product id: earning.Rule}`` for the products some active rule holds.

    Products in no rule are left out: they earn under :data:`earning.BASE`.
    ``rules`` may pass rules already fetched with :func:`active_rules`; otherwise
    they are read as at ``at``. Two queries (see :func:`rules_of` on proxy ranges),
    none for the second when no rule is active.
    """
    product_ids = {pk for pk in product_ids if pk is not None}
    if not product_ids:
        return {}
    if rules is None:
        rules = active_rules(at, tier_rank=tier_rank, segments=segments)
    if not rules:
        return {}
    products = annotate_rules(
        Product.objects.filter(pk__in=product_ids).only("pk").order_by(), rules
    )
    return rules_of(list(products), rules)


def _request_cache(request):
    """Rules and per-product answers looked up once per request."""
    cache = getattr(request, REQUEST_CACHE, None)
    if cache is None:
        cache = {"rules": None, "products": {}}
        if request is not None:
            setattr(request, REQUEST_CACHE, cache)
    return cache


def rule_for_product(product, *, request=None, at=None):
    """The rule a product earns under now (``earning.BASE`` if none).

    With a ``request``, the active rules are read once for the whole request.
    """
    cache = _request_cache(request)
    if product.pk not in cache["products"]:
        if cache["rules"] is None:
            cache["rules"] = active_rules(
                at,
                tier_rank=request_tier(request)[0],
                segments=lambda: request_segments(request),
            )
        found = rules_for_products([product.pk], rules=cache["rules"])
        cache["products"][product.pk] = found.get(product.pk, earning.BASE)
    return cache["products"][product.pk]


def price_basis(price, *, includes_tax=None):
    """The amount of an Oscar ``Price`` that earns points, or None if it has none.

    Incl. or excl. tax per ``OSCAR_LOYALTY_EARN_INCLUDES_TAX``; when tax is not
    known yet (a shop that adds it at checkout), the price excluding tax, which is
    what the shopper is sure to pay at least.
    """
    if price is None or not getattr(price, "exists", False):
        return None
    includes_tax = (
        loyalty_settings.EARN_INCLUDES_TAX if includes_tax is None else includes_tax
    )
    if includes_tax and price.is_tax_known:
        return price.incl_tax
    return price.excl_tax


def user_tier(user_id):
    """(rank, points multiplier) of the user's member: their tier's rank (None
    without a tier) and multiplier times any points boost in force; (None, 1)
    for guests and users who are not members. One query."""
    found = None
    if user_id is not None:
        found = (
            Member.objects.filter(user_id=user_id)
            .values_list(
                "tier__rank",
                "tier__points_multiplier",
                "points_boost",
                "points_boost_until",
            )
            .first()
        )
    if found is None:
        return None, Decimal(1)
    rank, multiplier, boost, until = found
    member = Member(points_boost=boost, points_boost_until=until)
    tier = Decimal(str(multiplier)) if multiplier is not None else Decimal(1)
    return rank, tier * member.boost_at()


def basket_member(basket):
    """The basket owner's ``Member`` with its tier (None for guests and users who
    are not members), read once per basket object: the tier offers, the points
    preview and the basket's panels of one request share it."""
    if not hasattr(basket, "_loyalty_member"):  # the basket may be a lazy object
        owner_id = getattr(basket, "owner_id", None)
        basket._loyalty_member = (
            Member.objects.select_related("tier").filter(user_id=owner_id).first()
            if owner_id is not None
            else None
        )
    return basket._loyalty_member


def shopper_member(user, basket=None):
    """The signed-in ``user``'s ``Member`` with its tier (None if not one): the one
    the basket's offers read already when ``basket`` is theirs."""
    if basket is not None and basket.owner_id == user.pk:
        return basket_member(basket)
    return Member.objects.select_related("tier").filter(user=user).first()


def basket_tier(basket):
    """:func:`user_tier` of the basket's owner, from :func:`basket_member`."""
    member = basket_member(basket)
    if member is None:
        return None, Decimal(1)
    return (member.tier.rank if member.tier else None), member.points_multiplier()


def tier_multiplier(user_id):
    """The points multiplier of the user's tier (1 without a member or a tier)."""
    return user_tier(user_id)[1]


def request_tier(request):
    """:func:`user_tier` of the request's user, looked up once per request."""
    cache = _request_cache(request)
    if "tier" not in cache:
        user = getattr(request, "user", None)
        signed_in = user is not None and user.is_authenticated
        cache["tier"] = user_tier(user.pk if signed_in else None)
    return cache["tier"]


def request_segments(request):
    """The segments of the request's member (scoring), looked up once per
    request and only when a campaign rule asks."""
    cache = _request_cache(request)
    if "segments" not in cache:
        from . import scoring

        user = getattr(request, "user", None)
        member_id = None
        if user is not None and user.is_authenticated:
            member_id = (
                Member.objects.filter(user_id=user.pk)
                .values_list("pk", flat=True)
                .first()
            )
        cache["segments"] = scoring.segments_of(member_id)
    return cache["segments"]


def request_tier_multiplier(request):
    """:func:`tier_multiplier` of the request's user, looked up once per request."""
    return request_tier(request)[1]


def product_points(product, price, *, request=None, at=None):
    """``(points, rule)`` one item of ``product`` at ``price`` would earn now.

    ``price`` is the ``Price`` of the request's strategy (``purchase_info.price``),
    so the page shows what checkout will use, for the signed-in member's tier too.
    ``(0, rule)`` when it has no price. The owner's minimum order is not applied:
    the page says so separately.
    """
    rule = rule_for_product(product, request=request, at=at)
    amount = price_basis(price)
    if amount is None:
        return 0, rule
    multiplier = Decimal(str(rule.multiplier)) * request_tier_multiplier(request)
    return earning.points_for_amount(amount, multiplier=multiplier), rule


def basket_line_points(basket, *, at=None):
    """Points each line of ``basket`` would earn if the order were placed now.

    The same computation as :func:`oscar_loyalty.services.orders.award_order`: each
    line's price after discounts (so points applied to the basket and other offers
    earn nothing), shipping left out, the owner's minimum order, the active rules.
    The basket must have its strategy (Oscar's middleware sets it). Three queries
    at most besides the basket's own lines (rules, products in rules, the owner's
    tier multiplier), whatever their number.
    """
    lines = [
        line
        for line in basket.all_lines()
        if line.stockrecord_id and line.unit_price_excl_tax is not None
    ]
    if not lines:
        return []
    # Until tax is known (a shop that adds it at checkout) Oscar cannot give the
    # prices including tax: count those before tax, as the product page does.
    includes_tax = loyalty_settings.EARN_INCLUDES_TAX and all(
        line.is_tax_known for line in lines
    )
    priced = []
    for line in lines:
        excl_tax = line.line_price_excl_tax_incl_discounts
        incl_tax = line.line_price_incl_tax_incl_discounts if includes_tax else excl_tax
        priced.append((line.pk, excl_tax, incl_tax))
    from .segment_offers import basket_segments

    by_product = rules_for_products(
        [line.product_id for line in lines],
        at=at,
        tier_rank=basket_tier(basket)[0],
        segments=lambda: basket_segments(basket),
    )
    rules = {
        line.pk: by_product[line.product_id]
        for line in lines
        if line.product_id in by_product
    }
    total = sum((incl if includes_tax else excl) for _, excl, incl in priced)
    return earning.order_line_points(
        priced,
        order_total=total,
        includes_tax=includes_tax,
        rules=rules,
        tier_multiplier=basket_tier(basket)[1],
    )


def basket_points(basket, *, at=None):
    """The points ``basket`` would earn if the order were placed now (an int)."""
    return sum(line.points for line in basket_line_points(basket, at=at))
