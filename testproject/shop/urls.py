"""URLs of the demo shop."""

from django.urls import path

from . import views

app_name = "shop"
urlpatterns = [
    path("", views.home, name="home"),
    path("signup", views.signup, name="signup"),
    path("orders", views.orders, name="orders"),
]
