"""django-oscar-loyalty: a membership and loyalty programme for django-oscar shops."""

__version__ = "0.1.0"
