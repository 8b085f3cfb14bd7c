"""A small metrics registry, one per process run, and its Prometheus text exposition (0.0.4).

Counters, gauges and histograms with fixed label names; a family's values are what was
counted into it plus what its readers (functions over a stage's stats, called at scrape
time) say. Label values come from small fixed sets (reasons, kinds, outcomes), never from
messages.
"""

from __future__ import annotations

import bisect
import logging
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeVar

__all__ = [
    "CONTENT_TYPE",
    "DURATION_BUCKETS",
    "Counter",
    "Family",
    "Gauge",
    "Histogram",
    "Metrics",
]

#: The Content-Type of the text exposition format this module writes.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
#: Seconds: from a fast local answer to a check's longest timeout.
DURATION_BUCKETS: tuple[float, ...] = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

log = logging.getLogger("mendline")

_F = TypeVar("_F", bound="Family")
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")

#: A family's values by label values, in the order of its label names.
Values = dict[tuple[str, ...], float]
#: What a reader returns: values by label values (``()`` when the family has no labels).
Reading = Mapping[tuple[str, ...], float]


@dataclass
class Family:
    """A metric family: its name, help, type and label names, and its values."""

    name: str
    help: str
    type: Literal["counter", "gauge", "histogram"]
    labels: tuple[str, ...] = ()
    _values: Values = field(default_factory=dict, init=False, repr=False)
    _readers: list[Callable[[], Reading]] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if not _NAME.fullmatch(self.name) or any(not _LABEL.fullmatch(n) for n in self.labels):
            raise ValueError(f"not a Prometheus metric or label name: {self.name} {self.labels}")
        if self.type == "counter" and not self.name.endswith("_total"):
            raise ValueError(f"a counter's name ends in _total: {self.name}")
        if self.type == "histogram" and "le" in self.labels:
            raise ValueError("le is the label of a histogram's buckets")

    def read_from(self, reader: Callable[[], Reading]) -> None:
        """Add what ``reader()`` returns, at each scrape, to the family's values."""
        self._readers.append(reader)

    def _key(self, labels: Mapping[str, str]) -> tuple[str, ...]:
        if set(labels) != set(self.labels):
            raise ValueError(f"{self.name} takes the labels {self.labels}, not {tuple(labels)}")
        return tuple(str(labels[n]) for n in self.labels)

    def values(self) -> Values:
        """The values now: counted, plus read."""
        total = dict(self._values)
        for reader in self._readers:
            try:
                reading = reader()
            except Exception:  # a scrape still answers, with what can be read
                log.exception("mendline: reading %s failed", self.name)
                continue
            for key, value in reading.items():
                total[key] = total.get(key, 0.0) + value
        return total

    def _header(self) -> list[str]:
        help_text = self.help.replace("\\", r"\\").replace("\n", r"\n")
        return [f"# HELP {self.name} {help_text}", f"# TYPE {self.name} {self.type}"]

    def exposition(self) -> list[str]:
        """The family's lines in the text format: HELP, TYPE, then one per sample."""
        lines = self._header()
        for key, value in sorted(self.values().items()):
            lines.append(f"{self.name}{_labels(self.labels, key)} {_number(value)}")
        return lines


class Counter(Family):
    """A count that only goes up (in this process); its name ends in ``_total``."""

    def inc(self, amount: float = 1.0, **labels: str) -> None:
        """Count ``amount`` (not negative) for these label values."""
        if amount < 0:
            raise ValueError("a counter does not go down")
        key = self._key(labels)
        self._values[key] = self._values.get(key, 0.0) + amount


class Gauge(Family):
    """A value that goes up and down."""

    def set(self, value: float, **labels: str) -> None:
        """Set the value for these label values."""
        self._values[self._key(labels)] = value

    def set_function(self, reader: Callable[[], Reading]) -> None:
        """Take the values from ``reader()`` at each scrape, in place of any earlier reader
        (a restarted stage's new connection, say)."""
        self._readers[:] = [reader]


@dataclass
class Histogram(Family):
    """Observations counted into fixed buckets (cumulative ``le`` buckets, sum and count)."""

    buckets: tuple[float, ...] = DURATION_BUCKETS
    _observed: dict[tuple[str, ...], tuple[list[int], float]] = field(
        default_factory=dict, init=False, repr=False
    )

    def observe(self, value: float, **labels: str) -> None:
        """Count one observation (seconds, bytes: the base unit) for these label values."""
        key = self._key(labels)
        counts, total = self._observed.get(key) or ([0] * (len(self.buckets) + 1), 0.0)
        counts[bisect.bisect_left(self.buckets, value)] += 1
        self._observed[key] = (counts, total + value)

    def exposition(self) -> list[str]:
        """HELP, TYPE, and per label values the ``_bucket`` lines, ``_sum`` and ``_count``."""
        lines = self._header()
        names = (*self.labels, "le")
        for key, (counts, total) in sorted(self._observed.items()):
            running = 0
            for bound, count in zip((*self.buckets, math.inf), counts, strict=True):
                running += count
                # As Prometheus' own clients write bounds: 1.0, not 1 (le is a label, a string).
                le = "+Inf" if math.isinf(bound) else repr(float(bound))
                bucket_labels = _labels(names, (*key, le))
                lines.append(f"{self.name}_bucket{bucket_labels} {running}")
            lines.append(f"{self.name}_sum{_labels(self.labels, key)} {_number(total)}")
            lines.append(f"{self.name}_count{_labels(self.labels, key)} {running}")
        return lines


class Metrics:
    """One process run's metric families, rendered in the Prometheus text format.

    Asking again for a family by its name gives the same one (a restarted stage finds its
    counters where it left them); asking with another type or other labels is a bug.
    """

    def __init__(self) -> None:
        self._families: dict[str, Family] = {}

    def counter(self, name: str, help: str, labels: Iterable[str] = ()) -> Counter:
        """The counter called ``name`` (``..._total``)."""
        return self._family(Counter(name, help, "counter", tuple(labels)))

    def gauge(self, name: str, help: str, labels: Iterable[str] = ()) -> Gauge:
        """The gauge called ``name``."""
        return self._family(Gauge(name, help, "gauge", tuple(labels)))

    def histogram(
        self,
        name: str,
        help: str,
        labels: Iterable[str] = (),
        buckets: tuple[float, ...] = DURATION_BUCKETS,
    ) -> Histogram:
        """The histogram called ``name``, with these fixed upper bounds."""
        if list(buckets) != sorted(set(buckets)) or not buckets:
            raise ValueError("histogram buckets are distinct and increasing")
        return self._family(Histogram(name, help, "histogram", tuple(labels), buckets=buckets))

    def _family(self, family: _F) -> _F:
        known = self._families.setdefault(family.name, family)
        if type(known) is not type(family) or known.labels != family.labels:
            raise ValueError(f"{family.name} is already a {known.type} of {known.labels}")
        if isinstance(known, Histogram) and known.buckets != getattr(family, "buckets", None):
            raise ValueError(f"{family.name} has the buckets {known.buckets}")
        return known

    def render(self) -> str:
        """Every family, sorted by name, in the text exposition format 0.0.4."""
        families = [self._families[name] for name in sorted(self._families)]
        return "\n".join(line for f in families for line in f.exposition()) + "\n"


def _labels(names: tuple[str, ...], values: tuple[str, ...]) -> str:
    if not names:
        return ""
    pairs = ",".join(f'{n}="{_escaped(v)}"' for n, v in zip(names, values, strict=True))
    return "{" + pairs + "}"


def _escaped(value: str) -> str:
    return value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")


def _number(value: float) -> str:
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    if float(value).is_integer() and abs(value) < 2**53:
        return str(int(value))
    return repr(float(value))
