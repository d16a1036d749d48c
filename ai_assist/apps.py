from django.apps import AppConfig


class AiAssistConfig(AppConfig):
    name = "ai_assist"
    verbose_name = "AI assistance"

    def ready(self) -> None:
        from ai_assist.metrics import register_collectors

        register_collectors()
