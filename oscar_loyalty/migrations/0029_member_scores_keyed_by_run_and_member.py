"""Member scores keyed by (run, member), without the measures behind them.

A scoring run writes a row per scored member, so every byte and every index of
a row is paid a million times a night. The table loses its surrogate ``id``
(a sequence and a second index on every insert) for a composite primary key on
(run, member), which is the one index it had besides; and it loses the
window spend, window orders and last interaction, which nothing reads back.

Django can't turn a table's key into a composite one in place, so the rows are
copied into a new table, the old one is dropped and the new one takes its
name. The copy is one ``INSERT … SELECT``.
"""

import django.db.models.deletion
from django.db import migrations, models

COLUMNS = (
    "scored_at, member_id, activity_segment, value_segment, recency_score, "
    "frequency_score, monetary_score, rfm_segment, churn_risk"
)


def copy_rows(apps, schema_editor):
    old = apps.get_model("oscar_loyalty", "MemberScore")._meta.db_table
    new = apps.get_model("oscar_loyalty", "KeyedMemberScore")._meta.db_table
    quote = schema_editor.quote_name
    schema_editor.execute(
        f"INSERT INTO {quote(new)} ({COLUMNS}) SELECT {COLUMNS} FROM {quote(old)}"
    )


def copy_rows_back(apps, schema_editor):
    old = apps.get_model("oscar_loyalty", "MemberScore")._meta.db_table
    new = apps.get_model("oscar_loyalty", "KeyedMemberScore")._meta.db_table
    quote = schema_editor.quote_name
    # The measures are gone: the restored rows carry the run's moment and zeros.
    schema_editor.execute(
        f"INSERT INTO {quote(old)} ({COLUMNS}, last_interaction_at, spend, orders) "
        f"SELECT {COLUMNS}, scored_at, 0, 0 FROM {quote(new)}"
    )


def _rename_constraints(schema_editor, old, new):
    """PostgreSQL names a table's key and checks after the table they were made
    on: the renamed table's get the names a table made as ``new`` would have."""
    if schema_editor.connection.vendor != "postgresql":
        return
    table = f"oscar_loyalty_{new if old == 'keyedmemberscore' else old}"
    with schema_editor.connection.cursor() as cursor:
        cursor.execute(
            "SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass "
            "AND conname LIKE %s",
            [table, f"oscar_loyalty_{old}%"],
        )
        names = [name for (name,) in cursor.fetchall()]
    quote = schema_editor.quote_name
    for name in names:
        renamed = name.replace(f"oscar_loyalty_{old}", f"oscar_loyalty_{new}", 1)
        schema_editor.execute(
            f"ALTER TABLE {quote(table)} RENAME CONSTRAINT {quote(name)} "
            f"TO {quote(renamed)}"
        )


def name_the_constraints(apps, schema_editor):
    _rename_constraints(schema_editor, "keyedmemberscore", "memberscore")


def name_the_constraints_back(apps, schema_editor):
    _rename_constraints(schema_editor, "memberscore", "keyedmemberscore")


class Migration(migrations.Migration):
    dependencies = [
        ("oscar_loyalty", "0028_scoring_history_thinning"),
    ]

    operations = [
        migrations.CreateModel(
            name="KeyedMemberScore",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "scored_at",
                        "member",
                        blank=True,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                ("scored_at", models.DateTimeField(verbose_name="run")),
                (
                    "member",
                    models.ForeignKey(
                        db_constraint=False,
                        db_index=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="oscar_loyalty.member",
                        verbose_name="member",
                    ),
                ),
                (
                    "activity_segment",
                    models.CharField(
                        choices=[
                            ("active", "Active"),
                            ("cooling", "Cooling"),
                            ("at_risk", "At risk"),
                            ("dormant", "Dormant"),
                        ],
                        max_length=12,
                        verbose_name="activity",
                    ),
                ),
                (
                    "value_segment",
                    models.CharField(
                        choices=[
                            ("top", "Top 20 %"),
                            ("middle", "Middle 60 %"),
                            ("bottom", "Bottom 20 %"),
                            ("none", "No purchases"),
                        ],
                        max_length=8,
                        verbose_name="value",
                    ),
                ),
                (
                    "recency_score",
                    models.PositiveSmallIntegerField(
                        null=True, verbose_name="recency (1-5)"
                    ),
                ),
                (
                    "frequency_score",
                    models.PositiveSmallIntegerField(
                        null=True, verbose_name="frequency (1-5)"
                    ),
                ),
                (
                    "monetary_score",
                    models.PositiveSmallIntegerField(
                        null=True, verbose_name="monetary (1-5)"
                    ),
                ),
                (
                    "rfm_segment",
                    models.CharField(
                        choices=[
                            ("champions", "Champions"),
                            ("loyal", "Loyal"),
                            ("potential", "Potential loyalists"),
                            ("new", "New customers"),
                            ("at_risk", "At risk"),
                            ("cant_lose", "Can't lose them"),
                            ("hibernating", "Hibernating"),
                            ("lost", "Lost"),
                            ("none", "No confirmed orders"),
                        ],
                        db_default="",
                        max_length=12,
                        verbose_name="RFM segment",
                    ),
                ),
                (
                    "churn_risk",
                    models.PositiveSmallIntegerField(
                        null=True, verbose_name="churn risk"
                    ),
                ),
            ],
            options={
                "verbose_name": "member score",
                "verbose_name_plural": "member scores",
                "ordering": ["-scored_at", "member_id"],
            },
        ),
        migrations.RunPython(copy_rows, copy_rows_back, elidable=True),
        migrations.DeleteModel(name="MemberScore"),
        migrations.RenameModel(old_name="KeyedMemberScore", new_name="MemberScore"),
        migrations.AlterField(
            model_name="memberscore",
            name="member",
            field=models.ForeignKey(
                db_constraint=False,
                db_index=False,
                on_delete=django.db.models.deletion.CASCADE,
                related_name="scores",
                to="oscar_loyalty.member",
                verbose_name="member",
            ),
        ),
        migrations.RunPython(name_the_constraints, name_the_constraints_back),
    ]
