from django.urls import path

from ai_assist import views

app_name = "ai_assist"

urlpatterns = [
    path("assist/", views.assist, name="assist"),
    path("assist/stream", views.assist_stream, name="assist_stream"),
    path("usage/", views.usage, name="usage"),
    path("batches/", views.batch_create, name="batch_create"),
    path("batches/<str:pk>/", views.batch_detail, name="batch_detail"),
]
