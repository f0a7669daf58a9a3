"""Access functions for Oscar's dashboard navigation.

Imported by the settings modules, so nothing here may import models.
"""


def can_access_wagtail_admin(user, url_name, url_args=None, url_kwargs=None):
    """Show the "Content (Wagtail)" dashboard link only to users Wagtail admits."""
    return user.is_active and user.has_perm("wagtailadmin.access_admin")
