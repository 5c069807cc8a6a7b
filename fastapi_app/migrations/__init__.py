"""Alembic's environment and the API's schema revisions (see ``fastapi_app.database.migrations``)."""
