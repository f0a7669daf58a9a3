"""Template tags: ``loyalty_checkout`` (points at checkout), ``loyalty_catalogue``
(points on product pages)."""
