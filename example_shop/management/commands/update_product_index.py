"""Haystack's ``update_index`` under a name of its own.

With Oscar and Wagtail in one project, ``manage.py update_index`` is Wagtail's
(``wagtail.search`` comes first in INSTALLED_APPS), so Oscar's product index, which
the catalogue pages list products from, is rebuilt with this command instead.
"""

from haystack.management.commands import update_index


class Command(update_index.Command):
    help = "Update the Haystack product index that Oscar's catalogue and search use."
