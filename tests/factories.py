"""Factories for the suite: shoppers, staff, products that can be bought and shipped."""

from decimal import Decimal

import factory
from django.contrib.auth import get_user_model
from oscar.core.loading import get_model

Country = get_model("address", "Country")
Partner = get_model("partner", "Partner")
ProductClass = get_model("catalogue", "ProductClass")
Product = get_model("catalogue", "Product")
StockRecord = get_model("partner", "StockRecord")

PASSWORD = "correct horse battery staple"


class UserFactory(factory.django.DjangoModelFactory):
    """A shopper who can sign in with ``email`` and :data:`PASSWORD`."""

    class Meta:
        model = get_user_model()
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"shopper{n}")
    email = factory.LazyAttribute(lambda user: f"{user.username}@example.com")
    first_name = "Mei"
    last_name = "Lin"
    is_active = True
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @factory.post_generation
    def _save(obj, create, extracted, **kwargs):  # noqa: N805
        if create:
            obj.save()


class StaffFactory(UserFactory):
    username = factory.Sequence(lambda n: f"staff{n}")
    is_staff = True


class CountryFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Country
        django_get_or_create = ("iso_3166_1_a2",)

    iso_3166_1_a2 = "CN"
    iso_3166_1_a3 = "CHN"
    iso_3166_1_numeric = "156"
    printable_name = "China"
    name = "People's Republic of China"
    is_shipping_country = True


class PartnerFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Partner
        django_get_or_create = ("name",)

    name = "Lotus & Co. warehouse"


class ProductClassFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = ProductClass
        django_get_or_create = ("name",)

    name = "Goods"
    requires_shipping = True
    track_stock = True


class ProductFactory(factory.django.DjangoModelFactory):
    """A standalone product with one stock record, so it can be bought at once."""

    class Meta:
        model = Product
        skip_postgeneration_save = True

    title = factory.Sequence(lambda n: f"Jasmine tea tin {n}")
    product_class = factory.SubFactory(ProductClassFactory)
    structure = Product.STANDALONE
    is_public = True

    @factory.post_generation
    def stockrecord(product, create, extracted, price=Decimal("88.00"), stock=100):  # noqa: N805
        if not create:
            return
        StockRecord.objects.create(
            product=product,
            partner=PartnerFactory(),
            partner_sku=f"SKU-{product.pk}",
            price_currency="CNY",
            price=price,
            num_in_stock=stock,
        )
