"""``{% loyalty_signup_consents %}``: the consent boxes of the sign-up form.

The plugin's versions of Oscar's ``customer/registration.html`` and
``customer/login_registration.html`` put them inside the registration form; a shop
with its own versions of those templates adds the tag inside its form. What the
shopper ticks is recorded when Oscar sends ``user_registered``
(``oscar_loyalty.receivers.join_on_registration``).
"""

from django import template

from .. import consent

register = template.Library()

#: The name of the sign-up form's consent boxes (one value per ticked purpose).
FIELD = "loyalty_consent"


@register.inclusion_tag(
    "oscar_loyalty/partials/signup_consents.html", takes_context=True
)
def loyalty_signup_consents(context):
    request = context.get("request")
    ticked = set()
    if request is not None and request.method == "POST":
        ticked = set(request.POST.getlist(FIELD))
    return {
        "field": FIELD,
        "purposes": [
            {
                "code": purpose.value,
                "label": purpose.label,
                "checked": purpose.value in ticked,
            }
            for purpose in consent.SIGNUP_PURPOSES
        ],
    }
