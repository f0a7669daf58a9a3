from datetime import date, datetime, time

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone
from oscar.core.loading import get_model

from ...conf import loyalty_settings
from ...models import Member
from ...services import orders
from ...services.members import create_missing_members

Order = get_model("order", "Order")


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
            "--since",
            help="Only orders placed on or after this date (YYYY-MM-DD).",
        )

    def handle(self, *args, award_orders=False, since=None, **options):
        users = get_user_model().objects.filter(is_active=True)
        created = create_missing_members(users)
        self.stdout.write(f"Member accounts created: {created}")
        if not award_orders:
            return
        placed = Order.objects.filter(user__isnull=False).exclude(
            status__in=loyalty_settings.REVERSE_STATUSES
        )
        if since:
            try:
                day = date.fromisoformat(since)
            except ValueError:
                raise CommandError("--since takes a date as YYYY-MM-DD.") from None
            placed = placed.filter(
                date_placed__gte=timezone.make_aware(datetime.combine(day, time.min))
            )
        awarded = 0
        for order in placed.select_related("user").order_by("pk").iterator(2000):
            awarded += orders.award_order(order, channel=Member.Channel.BACKFILL) or 0
        self.stdout.write(f"Points awarded: {awarded}")
