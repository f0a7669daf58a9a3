from datetime import date, datetime, time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from ... import tasks
from ...services.members import create_missing_members


class Command(BaseCommand):
    help = (
        "Install the programme into an existing shop: a member account for every "
        "active customer and, with --award-orders, points for their past orders. "
        "Safe to run again: nothing is created or awarded twice."
    )

    def add_arguments(self, parser):
        parser.add_argument(
            "--award-orders",
            action="store_true",
            help="Also award points for past orders (confirmed ones become spendable).",
        )
        parser.add_argument(
            "--in-workers",
            action="store_true",
            help="Send the orders to the Celery workers in ranges of order ids "
            "instead of awarding them here (for shops with millions of orders).",
        )
        parser.add_argument(
            "--since",
            help="Only orders placed on or after this date (YYYY-MM-DD).",
        )

    def handle(
        self, *args, award_orders=False, since=None, in_workers=False, **options
    ):
        users = get_user_model().objects.filter(is_active=True)
        created = create_missing_members(users)
        self.stdout.write(f"Member accounts created: {created}")
        if not award_orders:
            return
        since_at = None
        if since:
            try:
                day = date.fromisoformat(since)
            except ValueError:
                raise CommandError("--since takes a date as YYYY-MM-DD.") from None
            since_at = timezone.make_aware(datetime.combine(day, time.min))
        since_text = since_at.isoformat() if since_at else None
        ranges = tasks.backfill_ranges(since_at)
        if in_workers:
            for start, end in ranges:
                tasks.award_orders_range.delay(start, end, since_text)
            self.stdout.write(
                f"Order ranges sent to the Celery workers: {len(ranges)} "
                f"({tasks.BACKFILL_CHUNK} order ids each)"
            )
            return
        awarded = 0
        for start, end in ranges:
            awarded += tasks.award_orders_range(start, end, since_text)
        self.stdout.write(f"Points awarded: {awarded}")
