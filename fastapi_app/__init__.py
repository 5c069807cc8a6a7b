"""The business API behind nginx: authorizes from the verifier's signed identity headers."""

from fastapi_app.app import create_app
from fastapi_app.settings import ApiSettings
from service_runtime.config_error import ConfigError

__all__ = ["ApiSettings", "ConfigError", "create_app"]
