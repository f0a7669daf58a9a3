"""Charts for the analytics page, drawn on the server as SVG by pygal.

pygal (from PyPI, a dependency of the plugin) renders the chart inline in the
page: nothing to build, no JavaScript, no file copied into the static files, and
the chart prints and works without scripts. Its tooltip script, which pygal
would fetch from a CDN, is left out. Every chart has its data table under it
(the accessible version, and what the export downloads).
"""

import pygal
from pygal.style import Style

STYLE = Style(
    background="transparent",
    plot_background="transparent",
    font_family="inherit",
    colors=("#2b6cb0", "#c05621", "#718096", "#2f855a", "#805ad5", "#b7791f"),
    label_font_size=12,
    major_label_font_size=12,
    legend_font_size=12,
    title_font_size=14,
    value_font_size=11,
)


def _config(title, **options):
    return {
        "title": str(title),
        "style": STYLE,
        "js": [],  # no script from a CDN
        "disable_xml_declaration": True,
        "explicit_size": False,  # scales with the page (viewBox)
        "width": 800,
        "height": 320,
        "legend_at_bottom": True,
        "truncate_label": -1,
        "print_values": False,
        **options,
    }


def bar(title, labels, series, **options):
    """A bar chart: ``series`` is ``[(name, [value per label])]``."""
    chart = pygal.Bar(**_config(title, show_legend=len(series) > 1, **options))
    chart.x_labels = [str(label) for label in labels]
    for name, values in series:
        chart.add(str(name), [_number(value) for value in values])
    return chart.render(is_unicode=True)


def horizontal_bar(title, labels, values, **options):
    chart = pygal.HorizontalBar(**_config(title, show_legend=False, **options))
    chart.x_labels = [str(label) for label in labels]
    chart.add(str(title), [_number(value) for value in values])
    return chart.render(is_unicode=True)


def line(title, labels, series, **options):
    chart = pygal.Line(
        **_config(title, x_label_rotation=30, show_dots=len(labels) <= 40, **options)
    )
    chart.x_labels = [str(label) for label in labels]
    for name, values in series:
        chart.add(str(name), [_number(value) for value in values])
    return chart.render(is_unicode=True)


def _number(value):
    return None if value is None else float(value)
