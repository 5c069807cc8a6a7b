"""The running service: the aiohttp apps, settings from the environment, metrics, and ``main``."""
