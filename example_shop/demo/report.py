"""Counting what the demo loader created, reused or updated, and saying so."""

from collections import Counter

CREATED = "created"
REUSED = "reused"
UPDATED = "updated"


class Report:
    """Tallies objects per section and kind, and prints them to a command's stdout.

    Every builder function reports each object it looks at exactly once, so a second
    run of the command can show (and the tests can assert) that nothing was created.
    Verbosity 0 prints nothing, 1 a summary line per kind, 2 also every object.
    """

    def __init__(self, stdout=None, verbosity=1):
        self.stdout = stdout
        self.verbosity = verbosity if stdout is not None else 0
        self.counts = Counter()  # (section, kind, outcome) -> n
        self.section = None
        self._order = []  # (section, kind) in first-seen order

    def start(self, section):
        self.section = section
        self.write(f"{section}:", level=1)

    def add(self, kind, outcome, label=""):
        """Record one object of ``kind`` (e.g. "products") as created/reused/updated."""
        key = (self.section, kind)
        if key not in self._order:
            self._order.append(key)
        self.counts[(self.section, kind, outcome)] += 1
        if label:
            self.write(f"    {kind} {outcome}: {label}", level=2)

    def created(self, kind, label=""):
        self.add(kind, CREATED, label)

    def reused(self, kind, label=""):
        self.add(kind, REUSED, label)

    def updated(self, kind, label=""):
        self.add(kind, UPDATED, label)

    def finish_section(self):
        """Print one line per kind seen in the current section."""
        for section, kind in self._order:
            if section != self.section:
                continue
            outcomes = [CREATED, UPDATED, REUSED] + sorted(
                {o for (s, k, o) in self.counts if (s, k) == (section, kind)}
                - {CREATED, UPDATED, REUSED}
            )
            parts = [
                f"{self.counts[(section, kind, outcome)]} {outcome}"
                for outcome in outcomes
                if self.counts[(section, kind, outcome)] or outcome != UPDATED
            ]
            self.write(f"  {kind}: {', '.join(parts)}", level=1)

    def total(self, outcome):
        return sum(n for (_, _, o), n in self.counts.items() if o == outcome)

    def write(self, line, level=1):
        if self.verbosity >= level:
            self.stdout.write(line)
