"""Member scoring: segments, RFM and churn risk, nightly, in SQL.

Only members who agreed to profiling are scored (``consent.consenting
("profiling")``); a member who withdraws it loses their segments and their
scoring history at once (and any left are swept at the next run).

What a run gives each member
----------------------------

* **Activity** (``OSCAR_LOYALTY_ACTIVITY_DAYS``, default 30/90/180): days since
  the member's last interaction (an order placed, a sign-in, an action reward
  such as a check-in or a review, points redeemed, or joining) make them
  *active* (up to 30), *cooling* (up to 90), *at risk* (up to 180) or *dormant*.
* **Value** (``OSCAR_LOYALTY_VALUE_WINDOW_MONTHS``, default 12): the members who
  spent anything in the window (orders not cancelled, less refunds) are ranked
  by spend; the top 20 % are *top*, the bottom 20 % *bottom*, the rest *middle*
  (members tied with the last of the top 20 % are top as well). Members who
  spent nothing are *no purchases*.
* **RFM**, over all confirmed orders (not cancelled, less refunds): recency (how
  long since the last one), frequency (how many) and monetary (how much) each
  scored 1-5 by quintile among the scored members with a confirmed order. The
  quintile boundaries are the values at 20, 40, 60 and 80 % of each measure in
  rising order; a member scores 1 plus the number of boundaries their value is
  beyond, so members with the same value always share a score (with most
  members on one order, one order scores 1 and two orders more). Named
  segments, with ``FM`` the average of F and M rounded up, first match wins:

  ==========  ==================  ===========  ==============
  R           FM 1-2              FM 3         FM 4-5
  ==========  ==================  ===========  ==============
  5, 4        potential           loyal        champions
  3           potential           loyal        loyal
  2           hibernating         at risk      at risk
  1           lost                hibernating  can't lose
  ==========  ==================  ===========  ==============

  except that a member with exactly one confirmed order and R 4-5 is *new*.
  Members without a confirmed order have no scores and the segment *none*.
* **Churn risk** 0-100 (``OSCAR_LOYALTY_CHURN_WEIGHTS``, by default 40/25/15/20,
  and ``OSCAR_LOYALTY_CHURN_PERIOD_DAYS``, default 90), the weighted sum of four
  signals, each between 0 and 1:

  - *interval*: days since the last order (since joining, without one) against
    the member's own average interval between orders (with fewer than two
    orders: the cooling boundary, 90 days): ``(days / interval - 1) / 2``,
    so 0 on schedule or early, 0.5 at twice the usual gap, 1 from three times;
  - *frequency*: orders in the last period against the period before:
    ``1 - last / before`` (0 when there were none before or more now);
  - *points*: the same for redemptions;
  - *visits*: days since the last interaction against the dormant boundary
    (180 days): ``days / 180``, 1 from then on.

  ``risk = round(40·interval + 25·frequency + 15·points + 20·visits)``, halves
  rounded up. A steady monthly buyer on schedule scores about 0; a member who
  bought every month for a year, then not for three months, never redeemed and
  has not been back, scores 40 + 25 + 0 + 10 = 75.

How it runs
-----------

A run (:func:`run`) is one transaction of three statements: ``CREATE
TEMPORARY TABLE … AS`` measures every scored member (their orders, redemptions
and action rewards aggregated once, in member order) and takes their churn
risk, which needs no other member; one query takes the cut
points (the value thresholds and the RFM quintile boundaries); one ``INSERT …
SELECT`` writes a :class:`~oscar_loyalty.models.MemberScore` row per member, in
member order, so the rows go into the table's one index (run, member) at its
end. Then the run's :class:`~oscar_loyalty.models.ScoringRun` is written with
its members per segment. The newest run is every member's current segments, so
a run never updates the members' own rows (the costliest write there is),
nothing per member passes through Python, and a run that fails leaves nothing
behind. The ranking needs all members at once, so the run is not split into
ranges of members as the other nightly jobs are; it takes no
lock on members and writes only its own rows.
"""

from datetime import timedelta

from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from . import consent, rules
from .bulk import AnyOf
from .conf import loyalty_settings, site_settings
from .models import (
    ActionAward,
    Member,
    MemberScore,
    OrderActivity,
    Posting,
    ScoringRun,
)

#: The dimensions of segment codes (``"rfm:champions"``) and their fields.
SEGMENT_FIELDS = {
    "activity": "activity_segment",
    "value": "value_segment",
    "rfm": "rfm_segment",
}
#: Share of spenders in the top (and in the bottom) value segment, as 1/n.
VALUE_SHARE = 5
QUINTILES = (1, 2, 3, 4)


def window_start(now):
    return rules.add_months(now, -loyalty_settings.VALUE_WINDOW_MONTHS)


# -- SQL ---------------------------------------------------------------------


class Dialect:
    """The few spellings PostgreSQL and SQLite disagree on."""

    def __init__(self, conn):
        self.postgres = conn.vendor == "postgresql"
        self.ops = conn.ops
        if conn.vendor not in ("postgresql", "sqlite"):
            raise NotImplementedError(
                f"Member scoring runs on PostgreSQL or SQLite, not {conn.vendor}."
            )

    def days(self, later, earlier):
        """Days (fractional) from ``earlier`` to ``later``, as a float."""
        if self.postgres:
            # date_part gives a float; EXTRACT a numeric, slower to compute.
            return f"(date_part('epoch', ({later}) - ({earlier})) / 86400.0)"
        return f"(julianday({later}) - julianday({earlier}))"

    def greatest(self, *args):
        return f"{'GREATEST' if self.postgres else 'MAX'}({', '.join(args)})"

    def least(self, *args):
        return f"{'LEAST' if self.postgres else 'MIN'}({', '.join(args)})"

    def round_half_up(self, expression):
        if self.postgres:
            return f"CAST(FLOOR({expression} + 0.5) AS INTEGER)"
        return f"CAST({expression} + 0.5 AS INTEGER)"

    def fence(self):
        """Ends a subquery the planner must not fold into the query around it,
        so each of its columns is computed once, not once per use."""
        return "OFFSET 0" if self.postgres else "LIMIT -1 OFFSET 0"

    def moment(self, value):
        return value if self.postgres else self.ops.adapt_datetimefield_value(value)


def _tables():
    User = get_user_model()
    user_fields = {field.name for field in User._meta.get_fields()}
    return {
        "member": Member._meta.db_table,
        "score": MemberScore._meta.db_table,
        "activity": OrderActivity._meta.db_table,
        "posting": Posting._meta.db_table,
        "award": ActionAward._meta.db_table,
        "user": User._meta.db_table,
        "user_pk": User._meta.pk.column,
        "has_login": "last_login" in user_fields,
        "has_active": "is_active" in user_fields,
    }


def _params(now):
    active, cooling, at_risk = loyalty_settings.ACTIVITY_DAYS
    period = timedelta(days=loyalty_settings.CHURN_PERIOD_DAYS)
    return {
        "now": now,
        "recent": now - period,
        "previous": now - 2 * period,
        "window": window_start(now),
        "yes": True,
        "active": float(active),
        "cooling": float(cooling),
        "at_risk": float(at_risk),
        "redeem": Posting.Kind.REDEEM.value,
    }


#: The temporary table a run measures its members into (one per connection).
SIGNALS = "loyalty_scoring_signals"


def _falling(d, recent, previous):
    return (
        f"CASE WHEN {previous} > 0 THEN "
        f"{d.greatest('0.0', f'1.0 - 1.0 * {recent} / {previous}')} ELSE 0.0 END"
    )


def _risk(d, weights):
    """Churn risk 0-100 from one member's measures (see the module docstring);
    it needs no other member, so it is taken as the members are measured."""
    interval = d.least(
        "1.0",
        d.greatest(
            "0.0",
            f"({d.days('%(now)s', 'COALESCE(last_order, joined_at)')} "
            f"/ usual_interval - 1.0) / 2.0",
        ),
    )
    visits = d.least("1.0", "idle_days / %(at_risk)s")
    return d.round_half_up(
        f"({weights['interval']} * {interval}"
        f" + {weights['frequency']} * {_falling(d, 'recent_orders', 'previous_orders')}"
        f" + {weights['points']} * {_falling(d, 'recent_redeems', 'previous_redeems')}"
        f" + {weights['visits']} * {visits})"
    )


def _signals_sql(d, t, weights):
    """Per member who agreed to profiling, in member order: what the segments
    are made of (days idle, spend in the window, and the RFM measures) and the
    churn risk. Run as ``CREATE TEMPORARY TABLE … AS``."""
    since = d.days
    joined = "c.joined_at"
    last_interaction = d.greatest(
        joined,
        f"COALESCE(o.last_order, {joined})",
        f"COALESCE(w.last_award, {joined})",
        f"COALESCE(p.last_redeem, {joined})",
        f"COALESCE(c.last_login, {joined})",
    )
    active = " AND u.is_active = %(yes)s" if t["has_active"] else ""
    login = "u.last_login" if t["has_login"] else "NULL"
    usual = d.greatest(
        f"{since('o.last_order', 'o.first_order')} / (o.orders - 1)", "1.0"
    )
    return f"""
        SELECT member_id, idle_days, spend, confirmed, monetary, recency,
            {_risk(d, weights)} AS risk
        FROM (
        SELECT c.id AS member_id, c.joined_at,
            {since("%(now)s", last_interaction)} AS idle_days,
            o.last_order,
            CASE WHEN o.orders >= 2 THEN {usual} ELSE %(cooling)s END
                AS usual_interval,
            COALESCE(o.recent_orders, 0) AS recent_orders,
            COALESCE(o.previous_orders, 0) AS previous_orders,
            COALESCE(o.spend, 0) AS spend,
            COALESCE(o.confirmed, 0) AS confirmed,
            COALESCE(o.monetary, 0) AS monetary,
            -{since("%(now)s", "o.last_confirmed")} AS recency,
            COALESCE(p.recent_redeems, 0) AS recent_redeems,
            COALESCE(p.previous_redeems, 0) AS previous_redeems
        FROM (
            SELECT mb.id, mb.joined_at, {login} AS last_login FROM {t["member"]} mb
            JOIN {t["user"]} u ON u.{t["user_pk"]} = mb.user_id
            WHERE mb.consent_profiling = %(yes)s{active}
        ) c
        LEFT JOIN (
            SELECT a.member_id,
                MIN(a.placed_at) AS first_order,
                MAX(a.placed_at) AS last_order,
                COUNT(*) AS orders,
                COUNT(*) FILTER (WHERE a.placed_at > %(recent)s) AS recent_orders,
                COUNT(*) FILTER (
                    WHERE a.placed_at > %(previous)s AND a.placed_at <= %(recent)s
                ) AS previous_orders,
                SUM(a.spend - a.refunded) FILTER (WHERE a.placed_at > %(window)s)
                    AS spend,
                MAX(a.placed_at) FILTER (WHERE a.confirmed_at IS NOT NULL)
                    AS last_confirmed,
                COUNT(a.confirmed_at) AS confirmed,
                SUM(a.spend - a.refunded) FILTER (WHERE a.confirmed_at IS NOT NULL)
                    AS monetary
            FROM {t["activity"]} a
            WHERE a.cancelled_at IS NULL AND a.placed_at <= %(now)s
            GROUP BY a.member_id
        ) o ON o.member_id = c.id
        LEFT JOIN (
            SELECT member_id, MAX(created_at) AS last_redeem,
                COUNT(*) FILTER (WHERE created_at > %(recent)s) AS recent_redeems,
                COUNT(*) FILTER (
                    WHERE created_at > %(previous)s AND created_at <= %(recent)s
                ) AS previous_redeems
            FROM {t["posting"]} WHERE kind = %(redeem)s AND created_at <= %(now)s
            GROUP BY member_id
        ) p ON p.member_id = c.id
        LEFT JOIN (
            SELECT member_id, MAX(created_at) AS last_award FROM {t["award"]}
            WHERE created_at <= %(now)s GROUP BY member_id
        ) w ON w.member_id = c.id
        ORDER BY c.id {d.fence()}
        ) measured
    """


#: The cut points a run computes, in the order :func:`_cuts_sql` gives them.
CUTS = (
    *(f"r{q}" for q in QUINTILES),
    *(f"f{q}" for q in QUINTILES),
    *(f"m{q}" for q in QUINTILES),
    "top",
    "bottom",
)


def _cuts_sql(d):
    """One row: the RFM quintile boundaries (the values at rows ceil(q × n / 5),
    q = 1…4, of each measure in rising order, among members with a confirmed
    order) and the value thresholds (the spend at row ceil(n / 5) from the top
    and from the bottom, among members who spent anything)."""
    if d.postgres:
        # Ordered-set aggregates: a sort of one column each.
        fractions = ", ".join(f"{q / VALUE_SHARE}" for q in QUINTILES)

        def quintiles(column):
            return (
                f"percentile_disc(ARRAY[{fractions}]) WITHIN GROUP "
                f"(ORDER BY {column}) FILTER (WHERE confirmed > 0)"
            )

        share = 1 / VALUE_SHARE
        return f"""
            SELECT {quintiles("recency")}, {quintiles("confirmed")},
                {quintiles("monetary")},
                percentile_disc({share}) WITHIN GROUP (ORDER BY spend DESC)
                    FILTER (WHERE spend > 0),
                percentile_disc({share}) WITHIN GROUP (ORDER BY spend)
                    FILTER (WHERE spend > 0)
            FROM {SIGNALS}
        """
    picks = ", ".join(
        f"MAX(CASE WHEN confirmed > 0 AND {rank} = ({q} * rfm_n + {VALUE_SHARE - 1})"
        f" / {VALUE_SHARE} THEN {column} END)"
        for rank, column in (
            ("r_rn", "recency"),
            ("f_rn", "confirmed"),
            ("m_rn", "monetary"),
        )
        for q in QUINTILES
    )
    share = f"(s_n + {VALUE_SHARE - 1}) / {VALUE_SHARE}"
    return f"""
        SELECT {picks},
            MAX(CASE WHEN spend > 0 AND s_rn = s_n - {share} + 1 THEN spend END),
            MAX(CASE WHEN spend > 0 AND s_rn = {share} THEN spend END)
        FROM (
            SELECT recency, confirmed, monetary, spend,
                ROW_NUMBER() OVER (PARTITION BY confirmed > 0 ORDER BY recency)
                    AS r_rn,
                ROW_NUMBER() OVER (PARTITION BY confirmed > 0 ORDER BY confirmed)
                    AS f_rn,
                ROW_NUMBER() OVER (PARTITION BY confirmed > 0 ORDER BY monetary)
                    AS m_rn,
                COUNT(*) OVER (PARTITION BY confirmed > 0) AS rfm_n,
                ROW_NUMBER() OVER (PARTITION BY spend > 0 ORDER BY spend) AS s_rn,
                COUNT(*) OVER (PARTITION BY spend > 0) AS s_n
            FROM {SIGNALS}
        ) ranked
    """


def _cuts(cursor, d):
    cursor.execute(_cuts_sql(d))
    row = cursor.fetchone()
    if d.postgres:  # three arrays of four, then two values
        values = [
            *(row[0] or [None] * 4),
            *(row[1] or [None] * 4),
            *(row[2] or [None] * 4),
            row[3],
            row[4],
        ]
    else:
        values = list(row)
    return dict(zip(CUTS, values, strict=True))


def _insert_sql(d, t):
    """The run's rows from the measured members and the cut points.

    No ``ORDER BY``: the measured members were written in member order and a
    table this fresh is read back as written, so the rows reach the key's index
    in order without a second sort of a million rows (the order is only for
    speed; any order gives the same rows)."""

    def quintile(column, cut):
        beyond = " + ".join(
            f"CASE WHEN {column} > %({cut}{q})s THEN 1 ELSE 0 END" for q in QUINTILES
        )
        return f"CASE WHEN confirmed > 0 THEN 1 + {beyond} END"

    fm = "(f + m + 1) / 2"
    return f"""
        INSERT INTO {t["score"]} (
            member_id, scored_at, activity_segment, value_segment,
            recency_score, frequency_score, monetary_score, rfm_segment, churn_risk
        )
        SELECT member_id, %(now)s,
            CASE WHEN idle_days <= %(active)s THEN 'active'
                 WHEN idle_days <= %(cooling)s THEN 'cooling'
                 WHEN idle_days <= %(at_risk)s THEN 'at_risk'
                 ELSE 'dormant' END,
            CASE WHEN spend <= 0 THEN 'none'
                 WHEN spend >= %(top)s THEN 'top'
                 WHEN spend <= %(bottom)s THEN 'bottom'
                 ELSE 'middle' END,
            r, f, m,
            CASE WHEN confirmed = 0 THEN 'none'
                 WHEN r >= 4 AND confirmed = 1 THEN 'new'
                 WHEN r >= 4 AND {fm} >= 4 THEN 'champions'
                 WHEN r >= 3 AND {fm} >= 3 THEN 'loyal'
                 WHEN r >= 3 THEN 'potential'
                 WHEN r = 2 AND {fm} >= 3 THEN 'at_risk'
                 WHEN r = 2 THEN 'hibernating'
                 WHEN {fm} >= 4 THEN 'cant_lose'
                 WHEN {fm} = 3 THEN 'hibernating'
                 ELSE 'lost' END,
            risk
        FROM (
            SELECT member_id, idle_days, spend, confirmed,
                {quintile("recency", "r")} AS r,
                {quintile("confirmed", "f")} AS f,
                {quintile("monetary", "m")} AS m,
                risk
            FROM {SIGNALS} {d.fence()}
        ) scored
    """


def _summary(scored_at):
    """Members per segment of the run, and per tenth of churn risk (0-9, 10 for
    100): one query."""
    summary = {"activity": {}, "value": {}, "rfm": {}, "churn": [0] * 11}
    grouped = (
        MemberScore.objects.filter(scored_at=scored_at)
        .order_by()
        .values("activity_segment", "value_segment", "rfm_segment", "churn_risk")
        .annotate(n=Count("member"))
    )
    for row in grouped:
        n = row["n"]
        for key, field in (
            ("activity", "activity_segment"),
            ("value", "value_segment"),
            ("rfm", "rfm_segment"),
        ):
            summary[key][row[field]] = summary[key].get(row[field], 0) + n
        if row["churn_risk"] is not None:
            summary["churn"][row["churn_risk"] // 10] += n
    return summary


def run(now=None, *, task_id=None):
    """Score every member who agreed to profiling as of ``now``; returns the
    :class:`ScoringRun` (the one already written for this task or moment, if
    any: a retried task scores nothing twice)."""
    now = now or timezone.now()
    done = Q(scored_at=now) | Q(task_id=task_id) if task_id else Q(scored_at=now)
    existing = ScoringRun.objects.filter(done).first()
    if existing is not None:
        return existing
    d = Dialect(connection)
    with transaction.atomic():
        forget_unconsenting()
        params = {
            name: d.moment(value) if hasattr(value, "tzinfo") else value
            for name, value in _params(now).items()
        }
        t = _tables()
        with connection.cursor() as cursor:
            if d.postgres:
                # Measured: a parallel plan aggregates every member's orders
                # once per worker (the join's inner side), slower on any
                # number of cores than one pass.
                cursor.execute("SET LOCAL max_parallel_workers_per_gather = 0")
            cursor.execute(f"DROP TABLE IF EXISTS {SIGNALS}")
            signals = _signals_sql(d, t, loyalty_settings.CHURN_WEIGHTS)
            cursor.execute(f"CREATE TEMPORARY TABLE {SIGNALS} AS {signals}", params)
            cuts = _cuts(cursor, d)
            cursor.execute(_insert_sql(d, t), {**params, **cuts})
            scored = cursor.rowcount
            cursor.execute(f"DROP TABLE {SIGNALS}")
        summary = _summary(now)
        summary["cuts"] = {
            name: (-value if name.startswith("r") else value)  # recency in days
            for name, value in cuts.items()
            if value is not None
        }
        finished = ScoringRun.objects.create(
            scored_at=now, task_id=task_id, members=scored, summary=summary
        )
    forget_current()
    return finished


# -- Reading the newest run ----------------------------------------------------

CURRENT_KEY = "oscar_loyalty:scoring_run"


def current_run():
    """The newest run (None before the first): the members' current segments.
    In Django's cache until a run finishes (for caches not shared between
    processes, ``OSCAR_LOYALTY_SETTINGS_CACHE_SECONDS`` at most)."""
    found = cache.get(CURRENT_KEY)
    if found is None:
        found = (
            ScoringRun.objects.filter(rows_kept=True).order_by("-scored_at").first()
            or False
        )
        cache.set(CURRENT_KEY, found, site_settings.SETTINGS_CACHE_SECONDS)
    return found or None


def forget_current():
    cache.delete(CURRENT_KEY)
    transaction.on_commit(lambda: cache.delete(CURRENT_KEY))


def run_as_of(moment):
    """The run whose segments were current at ``moment``: the last one
    before it with its members' rows kept (None if there is none)."""
    return (
        ScoringRun.objects.filter(scored_at__lte=moment, rows_kept=True)
        .order_by("-scored_at")
        .first()
    )


def in_segments(members, *conditions, run=None, **wanted):
    """``members`` narrowed to those whose row in ``run`` (the newest by
    default) matches ``conditions`` and ``wanted`` (``rfm_segment="lost"``,
    ``churn_risk__gte=70``…); none before a first run."""
    newest = run or current_run()
    if newest is None:
        return members.none()
    return members.filter(
        pk__in=MemberScore.objects.filter(
            *conditions, scored_at=newest.scored_at, **wanted
        ).values("member_id")
    )


def attach_scores(members, run=None):
    """Give each of ``members`` (a list) its ``score`` in ``run`` (the newest
    by default; a :class:`MemberScore`, or None when not scored): one query."""
    newest = run or current_run()
    found = {}
    if newest is not None and members:
        found = {
            score.member_id: score
            for score in MemberScore.objects.filter(
                scored_at=newest.scored_at,
                member_id__in=[member.pk for member in members],
            )
        }
    for member in members:
        member.score = found.get(member.pk)
    return members


def segment_q(codes):
    """A filter on :class:`MemberScore` rows in any of the segments ``codes``
    (``"rfm:champions"``, ``"activity:dormant"``…)."""
    found = Q(pk__in=[])
    for code in codes:
        dimension, _colon, segment = code.partition(":")
        found |= Q(**{SEGMENT_FIELDS[dimension]: segment})
    return found


def members_in(members, codes):
    """``members`` in any of the segments ``codes`` by the newest run."""
    return in_segments(members, segment_q(codes))


def segments_of(member_id):
    """The member's segments by the newest run, as codes: one query (none when
    the member is not scored)."""
    newest = current_run()
    if newest is None or member_id is None:
        return set()
    row = (
        MemberScore.objects.filter(scored_at=newest.scored_at, member_id=member_id)
        .values_list(*SEGMENT_FIELDS.values())
        .first()
    )
    if row is None:
        return set()
    return {
        f"{dimension}:{value}"
        for dimension, value in zip(SEGMENT_FIELDS, row, strict=True)
    }


def score_of(member):
    """The member's current :class:`MemberScore` (None when not scored)."""
    return attach_scores([member])[0].score


def thin_history(now=None):
    """Keep every run's members' rows for ``OSCAR_LOYALTY_SCORES_DAILY_DAYS``
    (90), then only the first run of each month's: the older runs keep their
    summary (the trends) and lose their rows, one range delete per run (the
    history's index starts with the run). Returns the runs thinned."""
    now = now or timezone.now()
    cutoff = now - timedelta(days=loyalty_settings.SCORES_DAILY_DAYS)
    old = list(
        ScoringRun.objects.filter(scored_at__lt=cutoff, rows_kept=True)
        .order_by("scored_at")
        .values_list("pk", "scored_at")
    )
    first_of_month = {}
    for pk, when in (
        ScoringRun.objects.filter(scored_at__lt=cutoff)
        .order_by("scored_at")
        .values_list("pk", "scored_at")
    ):
        local = timezone.localtime(when)  # the shop's months
        first_of_month.setdefault((local.year, local.month), pk)
    kept = set(first_of_month.values())
    thinned = 0
    for pk, when in old:
        if pk in kept:
            continue
        with transaction.atomic():
            _delete(MemberScore.objects.filter(scored_at=when))
            ScoringRun.objects.filter(pk=pk).update(rows_kept=False)
        thinned += 1
    return thinned


def _delete(scores):
    """Delete the ``MemberScore`` rows of ``scores`` in one statement.

    ``QuerySet.delete()`` would read every row into Python first whenever any
    receiver listens to ``post_delete`` for all models (a shop's search index
    usually does: Haystack's realtime processor), and a run has a million
    rows. Nothing refers to a score and no receiver of ours needs one, so the
    rows go without signals."""
    return scores._raw_delete(scores.db)


def _runs():
    return list(
        ScoringRun.objects.filter(rows_kept=True).values_list("scored_at", flat=True)
    )


def forget(members):
    """The scoring history of ``members`` (a queryset) goes: looked up run by
    run (the history's index starts with the run)."""
    _delete(MemberScore.objects.filter(scored_at__in=_runs(), member__in=members))


def forget_unconsenting():
    """Members scored by the newest run who have since lost their profiling
    consent (withdrawn, or their account closed) keep no scoring history.
    (Withdrawing forgets at once: this catches accounts closed meanwhile.)"""
    newest = ScoringRun.objects.order_by("-scored_at").first()  # not the cache
    if newest is None:
        return
    gone = list(
        in_segments(Member.objects.all(), run=newest)
        .exclude(pk__in=consent.consenting("profiling"))
        .values_list("pk", flat=True)
    )
    if gone:
        forget(Member.objects.filter(AnyOf("pk", gone)))


def score_all(now=None):
    """Score every member now, in this process (tests, the command, small
    shops); returns how many were scored."""
    return run(now).members
