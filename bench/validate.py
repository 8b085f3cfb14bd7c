"""What validating one record costs the consumer: the models' parse (pydantic) against the
compiled one (msgspec types compiled from the models), in the same run.

Run: .venv/bin/python bench/validate.py [--events N]

The events are bench/ingest.py's realistic ones (3 to 30 frames, mostly few; about 1.5 KB),
sent three ways: compact with timestamps written with ``.000000Z`` (as bench/ingest.py sent
them before it wrote microseconds), as mendline's emitters write them (the bytes the consumer
stores as they came), and as Python's json.dumps writes them by default (spaces after
separators). Both parses return
what the consumer stores; each line is the best of 5 runs. Then what the compiled parse is
made of: decoding to Structs alone (no checks, no dicts: its floor) and turning the Structs
into the dicts the consumer's other steps read; and prepare_record, the consumer's whole work
on a record before the database (parse, content hash, scrubber's check, fingerprint), and
the same for a record whose header says mendline's shipper scrubbed it with the same rules.
Figures only, no assertions: this machine is shared.
"""

from __future__ import annotations

import argparse
import json
import timeit
from collections.abc import Callable
from typing import Any

import msgspec

from ingest import realistic_event  # bench/ is the script folder
from mendline.analyzers.grouping.scrubbing import Scrubber
from mendline.ingest import prepare_record
from mendline.schemas.compiled_event import compile_model, parse_event_compiled
from mendline.schemas.event import ErrorEvent, parse_event_exact


def per_record(parse: Callable[[Any], object], records: list[Any]) -> float:
    """Microseconds per record, best of 5 runs over all of them."""

    def run() -> None:
        for raw in records:
            parse(raw)

    run()  # warm the caches, as a running consumer has them
    return min(timeit.repeat(run, repeat=5, number=1)) / len(records) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    n = parser.parse_args().events
    sent = [realistic_event(i % 300, i, "2026-11-29T12:00:00.000000Z") for i in range(n)]
    emitted = [parse_event_exact(raw)[1] for raw in sent]
    spaced = [json.dumps(json.loads(raw)).encode() for raw in sent]
    size = sum(map(len, sent)) / n
    print(f"validation per record, {n} realistic events ({size:.0f} bytes), best of 5 runs")
    for label, records in [
        ("timestamps written .000000Z", sent),
        ("as mendline's emitters write them", emitted),
        ("json.dumps with spaces", spaced),
    ]:
        models = per_record(parse_event_exact, records)
        compiled = per_record(parse_event_compiled, records)
        print(
            f"{label:<34} pydantic {models:6.2f} µs   compiled {compiled:6.2f} µs"
            f"   {models / compiled:4.1f} x"
        )
    decoder = msgspec.json.Decoder(compile_model(ErrorEvent).strict)
    print(f"{'decode to Structs only':<34} {per_record(decoder.decode, sent):6.2f} µs")
    structs = [decoder.decode(raw) for raw in sent]
    print(f"{'Structs to dicts':<34} {per_record(msgspec.to_builtins, structs):6.2f} µs")
    scrubber = Scrubber()
    whole = per_record(lambda raw: prepare_record(raw, scrubber), emitted)
    print(f"{'prepare_record, compiled parse':<34} {whole:6.2f} µs")
    trusted = per_record(lambda raw: prepare_record(raw, scrubber, scrubbed=True), emitted)
    print(f"{'  with the shipper scrubbed header':<34} {trusted:6.2f} µs")


if __name__ == "__main__":
    main()
