from django.apps import AppConfig
from django.db.models.signals import post_migrate


def _seed_prices(sender, **kwargs) -> None:
    """After `migrate`: the price table gets a row for every model of AI_MODEL_PRICES that has none (never more)."""
    from ai_assist.pricing import price_table_seed

    price_table_seed()


class AiAssistConfig(AppConfig):
    name = "ai_assist"
    verbose_name = "AI assistance"

    def ready(self) -> None:
        from ai_assist.metrics import register_collectors

        register_collectors()
        post_migrate.connect(_seed_prices, sender=self, dispatch_uid="ai_assist_seed_prices")
