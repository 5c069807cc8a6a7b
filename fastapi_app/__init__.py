"""The business API behind nginx: authorizes from the verifier's signed identity headers."""

from fastapi_app.app import create_app
from fastapi_app.settings import ApiSettings, SettingsError

__all__ = ["ApiSettings", "SettingsError", "create_app"]
