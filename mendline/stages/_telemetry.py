"""What a process run knows of its stages for ``/readyz`` and ``/metrics``: one Telemetry per
run, one StageContext per stage, handed to the stage's ``run``."""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from mendline.schemas.checks import CheckResult
from mendline.stages._metrics import Metrics, Reading

__all__ = ["TRIGGERS_HELP", "StageContext", "StatsMetric", "Telemetry"]

_S = TypeVar("_S")

log = logging.getLogger("mendline")

#: The help of ``mendline_triggers_total``, which the consume stage reads from its stats and
#: the monitor stage counts into.
TRIGGERS_HELP = "Triggers made for the analysis and alert queues, by kind."


@dataclass(frozen=True)
class StatsMetric(Generic[_S]):
    """A counter read, at each scrape, from a stage's stats dataclass: its name, help and
    label names, and ``read(stats)``, the values by label values (``()`` without labels)."""

    name: str
    help: str
    read: Callable[[_S], Reading]
    labels: tuple[str, ...] = ()


class StageContext:
    """What one stage is given by the process running it: where it says whether it is ready,
    the stats it keeps (read at scrape time), and the metrics it counts into.

    A restarted stage gets the same context: its counters go on from where they were.
    """

    def __init__(self, name: str, metrics: Metrics) -> None:
        self.name = name
        #: The process's registry, for a stage that counts as it goes.
        self.metrics = metrics
        self._readiness: Callable[[], str | None] = lambda: "starting"
        # Per stats type: the folded totals of earlier runs, and the current run's stats.
        self._watched: dict[type, tuple[Any, Any]] = {}

    # -- readiness --------------------------------------------------------------------------

    def not_ready(self, reason: str) -> None:
        """Not ready, saying why in a few words ("connecting to PostgreSQL")."""
        self._readiness = lambda: reason

    def ready_when(self, waiting_for: Callable[[], str | None]) -> None:
        """Ready whenever ``waiting_for()`` (asked at each probe) is None; else not, and it
        says why."""
        self._readiness = waiting_for

    def ready(self) -> None:
        """Ready: the stage holds the connections it needs."""
        self._readiness = lambda: None

    def waiting_for(self) -> str | None:
        """None when ready, else why not."""
        try:
            return self._readiness()
        except Exception:  # a probe still answers: not ready, and the log says why
            log.exception("mendline: the %s stage's readiness could not be read", self.name)
            return "readiness unknown"

    # -- stats read at scrape time --------------------------------------------------------

    def watch(self, stats: _S, metrics: Iterable[StatsMetric[_S]]) -> None:
        """Read ``metrics`` from ``stats`` (a dataclass of counts: numbers and dicts of
        numbers) at each scrape, added to what earlier runs of the stage counted."""
        kind = type(stats)
        earlier = self._watched.get(kind)
        if earlier is None:
            for metric in metrics:
                self._register(kind, metric)
            done = kind()
        else:
            done = _plus(*earlier)
        self._watched[kind] = (done, stats)

    def totals(self, kind: type[_S]) -> _S:
        """The stats of type ``kind`` over every run of the stage in this process."""
        done, current = self._watched[kind]
        total: _S = _plus(done, current)
        return total

    def _register(self, kind: type[_S], metric: StatsMetric[_S]) -> None:
        family = self.metrics.counter(metric.name, metric.help, metric.labels)
        family.read_from(lambda: metric.read(self.totals(kind)))

    # -- for the monitor stage --------------------------------------------------------------

    def count_triggers(self, kind: str, n: int = 1) -> None:
        """Count ``n`` triggers made of ``kind`` (a kind of mendline.triggers, such as
        ``health_down``) in ``mendline_triggers_total{kind}``, with the consume stage's."""
        self.metrics.counter("mendline_triggers_total", TRIGGERS_HELP, ("kind",)).inc(n, kind=kind)

    def count_check(self, result: CheckResult) -> None:
        """Count one run of a health check: ``mendline_check_results_total{check,result}``
        (result ``success``, the failure's ``error_kind``, or ``condition`` when a condition
        failed) and its duration in ``mendline_check_duration_seconds{check}``."""
        outcome = "success" if result.success else result.error_kind or "condition"
        self.metrics.counter(
            "mendline_check_results_total",
            "Runs of each health check, by result: success, condition, or why it failed.",
            ("check", "result"),
        ).inc(check=result.check, result=outcome)
        self.metrics.histogram(
            "mendline_check_duration_seconds",
            "Seconds each health check's run took.",
            ("check",),
        ).observe(result.duration, check=result.check)


class Telemetry:
    """One process run's readiness and metrics: a StageContext for each stage it runs."""

    def __init__(self) -> None:
        self.metrics = Metrics()
        self._stages: dict[str, StageContext] = {}
        self.metrics.gauge(
            "mendline_stage_ready", "1 when the stage holds its connections, else 0.", ("stage",)
        ).read_from(self._ready_gauge)

    def stage(self, name: str) -> StageContext:
        """The context of the stage called ``name`` (the same one each time)."""
        if name not in self._stages:
            self._stages[name] = StageContext(name, self.metrics)
        return self._stages[name]

    def readiness(self) -> dict[str, str | None]:
        """Each stage's name, and None when it is ready, else why not."""
        return {name: stage.waiting_for() for name, stage in sorted(self._stages.items())}

    def ready(self) -> bool:
        """Whether every stage is ready (and there is one)."""
        states = self.readiness()
        return bool(states) and all(reason is None for reason in states.values())

    def _ready_gauge(self) -> Mapping[tuple[str, ...], float]:
        return {(name,): float(reason is None) for name, reason in self.readiness().items()}


def _plus(a: _S, b: _S) -> _S:
    """Two stats dataclasses added field by field (numbers, and dicts of numbers by key)."""
    total = copy.deepcopy(a)
    for f in dataclasses.fields(a):  # type: ignore[arg-type]
        x, y = getattr(a, f.name), getattr(b, f.name)
        if isinstance(x, dict):
            merged = dict(x)
            for key, value in y.items():
                merged[key] = merged.get(key, 0) + value
            setattr(total, f.name, merged)
        else:
            setattr(total, f.name, x + y)
    return total
