from __future__ import annotations

from django.apps import AppConfig


class ForeignConfig(AppConfig):
    name = "tests.foreign"
    label = "foreign"
    default_auto_field = "django.db.models.BigAutoField"
