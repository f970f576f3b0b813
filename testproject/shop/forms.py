"""Input checks of the signup and order endpoints, for forms and JSON alike."""

from django import forms
from django.contrib.auth.validators import UnicodeUsernameValidator
from django.core.exceptions import ValidationError

MAX_LINES = 50


class SignupForm(forms.Form):
    username = forms.CharField(max_length=150, validators=[UnicodeUsernameValidator()])
    email = forms.EmailField()
    password = forms.CharField(
        required=False, widget=forms.PasswordInput, help_text="Optional in the demo."
    )
    avatar_url = forms.URLField(required=False, assume_scheme="https")


class OrderForm(forms.Form):
    email = forms.EmailField()


def order_lines(data):
    """Return ``[{"sku", "qty"}]`` from a JSON ``items`` list or from form
    fields ``sku`` and ``qty`` (repeatable); raise ``ValidationError``.

    Only the shape is checked here; the ``validate_order`` job judges the
    content (known products, positive quantities, at least one line).
    """
    if hasattr(data, "getlist"):
        skus, qtys = data.getlist("sku"), data.getlist("qty")
        try:
            raw = [{"sku": s, "qty": int(q)} for s, q in zip(skus, qtys, strict=True)]
        except ValueError:
            raise ValidationError(
                "sku and qty must come in pairs, qty a whole number"
            ) from None
    else:
        raw = data.get("items")
    if not isinstance(raw, list) or len(raw) > MAX_LINES:
        raise ValidationError(f"items must be a list of at most {MAX_LINES} lines")
    for index, line in enumerate(raw):
        if (
            not isinstance(line, dict)
            or not isinstance(line.get("sku"), str)
            or type(line.get("qty")) is not int
        ):
            raise ValidationError(
                f'items[{index}] must look like {{"sku": "mug", "qty": 1}}'
            )
    return [{"sku": line["sku"], "qty": line["qty"]} for line in raw]
