from django.urls import path

from accounts import views

app_name = "accounts"

urlpatterns = [
    path("security/", views.security, name="security"),
    path("security/sessions/<str:pk>/end/", views.session_end, name="session_end"),
    path("security/tokens/<str:pk>/end/", views.token_family_end, name="token_family_end"),
    path("security/ci-tokens/", views.api_token_create, name="api_token_create"),
    path("security/ci-tokens/<str:pk>/revoke/", views.api_token_revoke, name="api_token_revoke"),
    path("users/", views.user_list, name="user_list"),
    path("users/<str:pk>/role/", views.user_role, name="user_role"),
    path("users/<str:pk>/active/", views.user_active, name="user_active"),
]
