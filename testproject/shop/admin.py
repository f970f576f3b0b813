"""Admin pages of the demo shop: what the jobs changed, next to the jobs."""

from django.contrib import admin

from .models import ExternalCall, Order, Product, Profile


@admin.register(Profile)
class ProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "avatar_url", "welcomed_at"]
    list_select_related = ["user"]


@admin.register(Product)
class ProductAdmin(admin.ModelAdmin):
    list_display = ["sku", "name", "price", "stock"]


@admin.register(Order)
class OrderAdmin(admin.ModelAdmin):
    list_display = ["id", "email", "total", "status", "payment_id", "created_at"]
    list_filter = ["status"]
    search_fields = ["email", "payment_id"]


@admin.register(ExternalCall)
class ExternalCallAdmin(admin.ModelAdmin):
    list_display = ["id", "service", "action", "key", "reference", "created_at"]
    list_filter = ["service"]
    search_fields = ["key", "reference"]
