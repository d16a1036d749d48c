from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("security/", views.security, name="security"),
    path("security/sessions/<str:pk>/end/", views.session_end, name="session_end"),
    path("security/tokens/<str:pk>/end/", views.token_family_end, name="token_family_end"),
    path("users/", views.user_list, name="user_list"),
    path("users/<str:pk>/role/", views.user_role, name="user_role"),
    path("users/<str:pk>/active/", views.user_active, name="user_active"),
]
