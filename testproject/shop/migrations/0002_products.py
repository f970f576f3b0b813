"""Seed the demo shop's catalogue."""

from decimal import Decimal

from django.db import migrations

PRODUCTS = [
    ("mug", "Mug", Decimal("12.00"), 1000),
    ("t-shirt", "T-shirt", Decimal("25.00"), 1000),
    ("sticker", "Sticker pack", Decimal("4.50"), 1000),
    ("poster", "Signed poster", Decimal("40.00"), 3),
]


def add_products(apps, schema_editor):
    Product = apps.get_model("shop", "Product")
    for sku, name, price, stock in PRODUCTS:
        Product.objects.using(schema_editor.connection.alias).get_or_create(
            sku=sku, defaults={"name": name, "price": price, "stock": stock}
        )


class Migration(migrations.Migration):
    dependencies = [("shop", "0001_initial")]

    operations = [migrations.RunPython(add_products, migrations.RunPython.noop)]
