from django.urls import path  # noqa: F401

app_name = "ai_assist"

urlpatterns: list = []
