"""Runs the demo sections in order, each in its own transaction.

A section that fails rolls back whole, so the database never holds half a catalogue
or an order without its lines; sections already committed stay, and a re-run
completes the rest because every section reuses what exists.
"""

from django.conf import settings
from django.core.management import call_command
from django.db import transaction

from oscar_loyalty import notifications

from .catalogue import load_catalogue
from .loyalty import load_loyalty, load_loyalty_history
from .orders import load_orders
from .pages import load_pages
from .people import load_people
from .programme import load_programme
from .report import Report


def load_demo_data(stdout=None, verbosity=1):
    """Load (or complete) the whole demo; return the :class:`Report` of the run.

    The demo's history (orders months old, the tiers they reached) sends the
    shoppers no messages."""
    with notifications.paused():
        return _load(Report(stdout, verbosity))


def _load(report):
    with transaction.atomic():
        load_catalogue(report)
    with transaction.atomic():
        shoppers = load_people(report)
    with transaction.atomic():
        load_loyalty(report, shoppers)
    with transaction.atomic():
        load_orders(report, shoppers)
    with transaction.atomic():
        load_loyalty_history(report)
    with transaction.atomic():
        load_programme(report)
    with transaction.atomic():
        score_members(report)
    with transaction.atomic():
        load_pages(report)
    update_search_index(report)
    return report


def score_members(report):
    """Segments for the shoppers who agreed to profiling, as the nightly job
    would give them (the dashboard's member search filters by them)."""
    from django.utils import timezone

    from oscar_loyalty import scoring
    from oscar_loyalty.models import ScoringRun

    report.start("Member segments")
    if ScoringRun.objects.exists():
        report.reused("scoring runs")  # the nightly job scores them again
    else:
        from oscar_loyalty import winback

        winback.start(scoring.run(timezone.now()))
        report.created("scoring runs")
    report.finish_section()


def update_search_index(report):
    """Rebuild the product search index that Oscar browses the catalogue through.

    Products are indexed as they are saved, but their prices and stock come later
    from stock records, and a demo loaded under other settings may have no index.
    Haystack's SimpleEngine has no index (it queries the database), so it is skipped.
    """
    engine = settings.HAYSTACK_CONNECTIONS.get("default", {}).get("ENGINE", "")
    if not engine or engine.endswith("simple_backend.SimpleEngine"):
        return
    report.start("Search index")
    call_command("update_product_index", verbosity=0, remove=True)
    report.add("search indexes", "refreshed", engine)
    report.finish_section()
