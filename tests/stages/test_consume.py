"""The consume stage's closing line: its counters, and what the producer check let through."""

from __future__ import annotations

import pytest

from mendline.analyzers.policy import ProducerAuthMode, ProducerKeys, ProducerReason
from mendline.ingest import ConsumerStats
from mendline.ingest.consumer import ProducerCheck
from mendline.stages.consume import summary

COUNTERS = "mendline: consumed 7 records: 4 stored, 1 duplicates, 2 dead-lettered"


def check(mode: ProducerAuthMode, warned: dict[ProducerReason, int]) -> ProducerCheck:
    producers = ProducerCheck(ProducerKeys(), mode)
    producers.warned.update(warned)
    return producers


@pytest.mark.parametrize(
    ("producers", "line"),
    [
        (None, COUNTERS),
        (check("enforce", {}), COUNTERS),  # what enforce refused is among the dead-lettered
        (check("warn", {}), f"{COUNTERS}; 0 of those stored failed the producer check"),
        (
            check("warn", {"missing_signature": 2, "bad_signature": 1}),
            f"{COUNTERS}; 3 of those stored failed the producer check"
            " (bad_signature 1, missing_signature 2)",
        ),
    ],
)
def test_the_closing_line_counts_what_warn_let_through_by_reason(
    producers: ProducerCheck | None, line: str
) -> None:
    stats = ConsumerStats(received=7, stored=4, duplicates=1)
    stats.dead_lettered.update({"not_json": 1, "unauthenticated": 1})
    assert summary(stats, producers) == line
