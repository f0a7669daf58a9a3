"""An order placed through Oscar's real checkout views, on the example shop's URLs."""

import pytest
from django.urls import reverse

from tests.checkout import place_order
from tests.factories import CountryFactory, ProductFactory, UserFactory

pytestmark = pytest.mark.django_db


def test_a_signed_in_shopper_can_buy_a_product_through_the_checkout_views(client):
    CountryFactory()
    shopper = UserFactory()
    product = ProductFactory(title="Longjing green tea")
    client.force_login(shopper)

    order = place_order(client, product, quantity=2)

    assert order.user == shopper
    assert order.status == "Pending"
    assert order.currency == "CNY"
    assert [(line.product, line.quantity) for line in order.lines.all()] == [
        (product, 2)
    ]
    assert order.total_incl_tax == 176
    product.stockrecords.get().refresh_from_db()
    assert product.stockrecords.get().num_allocated == 2
    response = client.get(reverse("checkout:thank-you"))
    assert response.status_code == 200
    assert order.number in response.content.decode()
