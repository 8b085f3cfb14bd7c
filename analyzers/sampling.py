"""Which of an issue's events are stored whole: the first of each hour, the first of each
release and environment, then a uniform sample (a reservoir) of the rest. Every event is
counted whichever are stored; this decides only which rows are kept."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass, replace

__all__ = ["MAX_PAIRS", "WHOLE", "HourSample", "SampledHour", "pair_key", "sample_hour"]

#: An event's place when it is stored whole (not a reservoir slot).
WHOLE = -1
#: The release/environment pairs remembered per issue and hour; past them, a new pair is
#: sampled like any other event.
MAX_PAIRS = 50


def pair_key(fingerprint: str, release: str | None, environment: str) -> str:
    """How one fingerprint's release/environment pair is remembered (per fingerprint, not
    per issue: an unmerge takes a fingerprint's events back, every environment and release
    of it among them). Two pairs whose names hold the separator (chr(31)) could share a key:
    the second would then be sampled like any other event, never miscounted."""
    return f"{fingerprint}\x1f{release or ''}\x1f{environment}"


@dataclass(frozen=True)
class HourSample:
    """One issue's events of one hour so far: received, stored whole, offered to the
    reservoir (those past the whole ones), reservoir slots filled, and the pairs stored."""

    received: int = 0
    kept: int = 0
    offered: int = 0
    #: The reservoir's slots filled (they are 0 .. sampled - 1).
    sampled: int = 0
    pairs: frozenset[str] = frozenset()


@dataclass(frozen=True)
class SampledHour:
    """What :func:`sample_hour` decided for a batch: each event's place (WHOLE, a reservoir
    slot, or None: counted, not stored), the slots whose event of an earlier batch is
    replaced (to delete), and the hour as it is after the batch."""

    places: list[int | None]
    replaced: list[int]
    after: HourSample


def sample_hour(
    before: HourSample,
    pairs: Sequence[str],
    *,
    full: int,
    reservoir: int,
    rng: random.Random,
) -> SampledHour:
    """Place the batch's events of one issue and hour (each given by its
    :func:`pair_key`, in the order received), after ``before``.

    An event is stored whole when fewer than ``full`` were this hour, or when its pair was
    not stored yet this hour (so every release and environment an issue had stays
    searchable). Past that it is offered to a reservoir of ``reservoir`` slots (Vitter's
    algorithm R): the k-th offered takes a slot with probability reservoir/k (the first
    ``reservoir`` fill them), replacing what held it, so the slots hold a uniform sample of
    everything offered this hour. A reservoir made smaller within an hour keeps its higher
    slots' events until the hour ends; one made bigger takes the next offered into its new
    slots while no more were offered than its size, and draws past it.
    ``full`` 0: every event is stored whole (no sampling).
    """
    places: list[int | None] = []
    replaced: set[int] = set()
    holder: dict[int, int] = {}  # slot -> index in this batch of the event holding it
    kept, offered, sampled = before.kept, before.offered, before.sampled
    seen = set(before.pairs)
    filled_before = before.sampled
    for pair in pairs:
        if full <= 0 or kept < full or (pair not in seen and len(seen) < MAX_PAIRS):
            places.append(WHOLE)
            kept += 1
            if len(seen) < MAX_PAIRS:
                seen.add(pair)
            continue
        offered += 1
        if offered <= reservoir:
            slot: int | None = sampled
        else:
            pick = rng.randrange(offered)
            # A pick of an empty slot (a reservoir made bigger) takes the lowest empty one:
            # the same chance of being kept, and the filled slots stay 0 .. sampled - 1.
            slot = None if pick >= reservoir else min(pick, sampled)
        if slot is not None:
            sampled = max(sampled, slot + 1)
            if slot in holder:
                places[holder[slot]] = None  # taken again within the batch
            elif slot < filled_before:
                replaced.add(slot)
            holder[slot] = len(places)
        places.append(slot)
    after = replace(
        before,
        received=before.received + len(pairs),
        kept=kept,
        offered=offered,
        sampled=sampled,
        pairs=frozenset(seen),
    )
    return SampledHour(places, sorted(replaced), after)
