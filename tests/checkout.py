"""Placing an order the way a shopper does: through Oscar's real checkout views."""

from django.urls import reverse
from oscar.core.loading import get_model

Order = get_model("order", "Order")

SHIPPING_ADDRESS = {
    "first_name": "Mei",
    "last_name": "Lin",
    "line1": "88 Nanjing West Road",
    "line4": "Shanghai",
    "postcode": "200040",
    "country": "CN",
    "phone_number": "+8613800138000",
}


def add_to_basket(client, product, quantity=1):
    response = client.post(
        reverse("basket:add", kwargs={"pk": product.pk}), {"quantity": quantity}
    )
    assert response.status_code == 302, response
    return response


def place_order(client, product, quantity=1):
    """Basket → shipping address → preview → place order; returns the new Order.

    The client must be signed in, and ``CN`` must be a shipping country.
    """
    before = set(Order.objects.values_list("pk", flat=True))
    add_to_basket(client, product, quantity)
    response = client.post(
        reverse("checkout:shipping-address"), SHIPPING_ADDRESS, follow=True
    )
    assert response.status_code == 200, response
    assert response.redirect_chain, "the shipping address form was not accepted"
    response = client.post(reverse("checkout:preview"), {"action": "place_order"})
    assert response.status_code == 302, getattr(response, "context", None)
    assert response.url == reverse("checkout:thank-you"), response.url
    created = Order.objects.exclude(pk__in=before)
    assert created.count() == 1
    return created.get()
