"""``manage.py load_demo_data``: fill the example shop with a catalogue, logins,
order histories and Wagtail pages, so every screen has something to show.

Safe to run again: it reuses what exists (products by UPC, users by username,
orders by number, pages by type and slug) and creates only what is missing.
"""

import time

from django.core.management.base import BaseCommand

from example_shop.demo import DEMO_USERS
from example_shop.demo.loader import load_demo_data
from example_shop.demo.report import CREATED, REUSED, UPDATED


class Command(BaseCommand):
    help = (
        "Load the Lotus & Co. demo data: 30 products in 5 categories, an admin, an "
        "editor and 5 shoppers with 18 months of orders, and the Wagtail home and "
        "members pages. Idempotent: existing objects are reused, never duplicated."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--quiet",
            action="store_true",
            help="Print nothing (the same as --verbosity 0).",
        )

    def handle(self, *args, quiet=False, verbosity=1, **options):
        verbosity = 0 if quiet else verbosity
        started = time.monotonic()
        report = load_demo_data(self.stdout, verbosity)
        if verbosity < 1:
            return
        created, updated, reused = (
            report.total(CREATED),
            report.total(UPDATED),
            report.total(REUSED),
        )
        summary = (
            f"Done in {time.monotonic() - started:.1f} s: {created} created, "
            f"{updated} updated, {reused} reused."
        )
        if created or updated:
            self.stdout.write(self.style.SUCCESS(summary))
        else:
            self.stdout.write(
                self.style.SUCCESS(f"{summary} Nothing new: the demo was complete.")
            )
        self.stdout.write("")
        self.stdout.write("Demo logins (sign in with the e-mail address or username):")
        width = max(len(user.email) for user in DEMO_USERS)
        for user in DEMO_USERS:
            self.stdout.write(
                f"  {user.email:<{width}}  {user.password:<8}  {user.description}"
            )
        self.stdout.write(
            "Shop: http://127.0.0.1:8000/shop/  Members: /members/  "
            "Dashboard: /shop/dashboard/  CMS: /cms/"
        )
