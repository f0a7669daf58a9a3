"""Laptop settings: debug on, all embedded unless the environment says otherwise."""

from .base import *  # noqa: F403
from .env import env_bool

DEBUG = env_bool("DJANGO_DEBUG", True)
INTERNAL_IPS = ["127.0.0.1"]
