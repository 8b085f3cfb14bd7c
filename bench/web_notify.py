"""The dashboard's NOTIFY triggers (0024) on the consumer's write path: Store.write, with and
without them, the same batches in the same run.

Run: .venv/bin/python bench/web_notify.py [--events 5000] [--batch 500] [--issues 300]
         [--writers 1,4] [--rounds 3]

Two fresh databases on one embedded PostgreSQL, both migrated; in the baseline the web_notify
triggers are dropped (what the schema was before 0024). Each round writes ``--events`` prepared
events in batches of ``--batch`` over ``--issues`` issues (the first round creates them), to
each database in turn (the order alternates), by ``--writers`` concurrent writers (each its own
pool, as consumers in a group are): events/s for each, the median over the rounds. A LISTEN
connection on mendline_web is open on the database with the triggers, as the web process's is.
Then the triggers' own cost, apart from the rest of a batch: the consumer's UPDATE of
``--issues`` issues, each in its own committed transaction, alternately on each database.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from mendline.analyzers.grouping.scrubbing import Scrubber  # noqa: E402
from mendline.devstack import EmbeddedPostgres  # noqa: E402
from mendline.ingest import prepare_record  # noqa: E402
from mendline.schemas.prepared import PreparedEvent  # noqa: E402
from mendline.schemas.settings import load_settings  # noqa: E402
from mendline.sinks.postgres import Store, connect_store  # noqa: E402
from tests.db_helpers import fresh_database  # noqa: E402
from tests.integration.event_factory import encode, make_event  # noqa: E402

_TRIGGERS = """
SELECT format('DROP TRIGGER %I ON %s', t.tgname, t.tgrelid::regclass)
FROM pg_trigger t WHERE t.tgname LIKE 'web_notify%' AND NOT t.tgisinternal
"""


def batches(events: int, size: int, issues: int, round_: int) -> list[list[PreparedEvent]]:
    scrubber = Scrubber()
    prepared = [
        prepare_record(encode(make_event(n % issues, round_ * events + n)), scrubber)
        for n in range(events)
    ]
    return [prepared[i : i + size] for i in range(0, len(prepared), size)]


async def write_all(stores: list[Store], work: list[list[PreparedEvent]]) -> float:
    """Seconds to write every batch of ``work``, the batches shared out among ``stores``."""
    queue: asyncio.Queue[list[PreparedEvent]] = asyncio.Queue()
    for batch in work:
        queue.put_nowait(batch)

    async def writer(store: Store) -> None:
        while not queue.empty():
            await store.write(queue.get_nowait())

    started = time.perf_counter()
    await asyncio.gather(*(writer(store) for store in stores))
    return time.perf_counter() - started


async def measure(url: str, args: argparse.Namespace, writers: int) -> dict[str, list[float]]:
    rates: dict[str, list[float]] = {"without": [], "with": []}
    async with fresh_database(url) as base_url, fresh_database(url) as live_url:
        settings = {
            name: load_settings(database_url=u)
            for name, u in (("without", base_url), ("with", live_url))
        }
        stores = {
            name: [await connect_store(s) for _ in range(writers)] for name, s in settings.items()
        }
        conn = await asyncpg.connect(base_url)
        for (drop,) in await conn.fetch(_TRIGGERS):
            await conn.execute(drop)
        await conn.close()
        heard: list[str] = []
        listener = await asyncpg.connect(live_url)
        await listener.add_listener("mendline_web", lambda *a: heard.append(a[3]))
        try:
            for round_ in range(args.rounds):
                work = batches(args.events, args.batch, args.issues, round_)
                order = ["without", "with"] if round_ % 2 == 0 else ["with", "without"]
                for name in order:
                    seconds = await write_all(stores[name], work)
                    rates[name].append(args.events / seconds)
        finally:
            await listener.close()
            for each in stores.values():
                for store in each:
                    await store.close()
        print(f"      ({len(heard)} notifications heard on mendline_web)")
    return rates


async def statement_cost(url: str, issues: int, repeats: int) -> tuple[float, float]:
    """Median milliseconds of one committed UPDATE of ``issues`` issues, without and with
    the triggers (a database each, the issues made first), alternately."""
    async with fresh_database(url) as base_url, fresh_database(url) as live_url:
        conns = {}
        for name, u in (("without", base_url), ("with", live_url)):
            store = await connect_store(load_settings(database_url=u))
            await store.write([b for batch in batches(issues, issues, issues, 0) for b in batch])
            await store.close()
            conns[name] = await asyncpg.connect(u)
        for (drop,) in await conns["without"].fetch(_TRIGGERS):
            await conns["without"].execute(drop)
        listener = await asyncpg.connect(live_url)
        await listener.add_listener("mendline_web", lambda *a: None)
        times: dict[str, list[float]] = {"without": [], "with": []}
        update = """UPDATE mendline.issues SET times_seen = times_seen + 1, updated_at = now()
                    WHERE id = ANY($1::bigint[])"""
        try:
            for _ in range(repeats):
                for name, conn in conns.items():
                    ids = [r["id"] for r in await conn.fetch("SELECT id FROM mendline.issues")]
                    started = time.perf_counter()
                    async with conn.transaction():
                        await conn.execute(update, ids)
                    times[name].append((time.perf_counter() - started) * 1000)
        finally:
            await listener.close()
            for conn in conns.values():
                await conn.close()
    return statistics.median(times["without"]), statistics.median(times["with"])


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--issues", type=int, default=300)
    parser.add_argument("--writers", default="1,4")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with EmbeddedPostgres() as pg:
        print(
            f"Store.write of {args.events} events a round, batches of {args.batch},"
            f" {args.issues} issues, median of {args.rounds} rounds:"
        )
        for writers in (int(w) for w in args.writers.split(",")):
            rates = await measure(pg.url, args, writers)
            without, with_ = (statistics.median(rates[k]) for k in ("without", "with"))
            print(
                f"  {writers} writer(s): without the triggers {without:8.0f} events/s,"
                f" with them {with_:8.0f} events/s ({(with_ / without - 1) * 100:+.1f}%)"
            )
        without_ms, with_ms = await statement_cost(pg.url, args.issues, 200)
        print(
            f"  one committed UPDATE of {args.issues} issues: without {without_ms:.2f} ms,"
            f" with {with_ms:.2f} ms ({with_ms - without_ms:+.2f} ms a statement)"
        )


if __name__ == "__main__":
    asyncio.run(main())
