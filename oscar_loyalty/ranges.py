"""The plugin's own Oscar range of every product, as a range proxy class.

Oscar's ``Range.contains_product`` asks the database once or twice per product
and range object, and every offer condition and benefit loads its own range
object: a basket of three lines with the tier, campaign and coupon offers cost
dozens of queries for an answer that is always "yes". This proxy answers without
a query. The range is private (not public, not editable in Oscar's dashboard:
proxy ranges are not), used only by the plugin's own offers; an owner who wants
exclusions gives a campaign a range of their own.
"""

from oscar.core.loading import get_model


class AllProducts:
    """Every product; ``Benefit`` still skips products that are not discountable."""

    def contains_product(self, product):
        return True

    def all_products(self):
        return get_model("catalogue", "Product").objects.all()

    def num_products(self):
        return None


ALL_PRODUCTS_PROXY = f"{__package__}.ranges.AllProducts"
