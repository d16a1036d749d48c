from django.apps import AppConfig


class AccountsConfig(AppConfig):
    name = "accounts"
    verbose_name = "Accounts and access"

    def ready(self) -> None:
        from accounts import allauth_compat, receivers  # noqa: F401 - receivers connect signal handlers

        allauth_compat.install()
