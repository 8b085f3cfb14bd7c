"""A relay served on loopback against the session's broker and a fresh database: its key,
its DSN, and the topics it writes (unique to each test)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from mendline.ingest.relay import KafkaSender, KeyRing, Relay, format_dsn
from mendline.schemas.people import Actor
from mendline.schemas.relay import RelayKey
from mendline.schemas.settings import Settings, load_settings
from mendline.sinks.postgres import RelayKeyStore, append_audit, migrated_pool
from mendline.web import serving_web
from tests.integration.kafka_helpers import unique_topic

ADMIN = Actor(name="ada", role="admin", auth="local")


@dataclass
class ServedRelay:
    """A relay being served: where, with which key and DSN, writing which topics."""

    url: str
    settings: Settings
    relay: Relay
    keys: RelayKeyStore
    ring: KeyRing
    key: RelayKey

    @property
    def dsn(self) -> str:
        return format_dsn(self.url, self.key.public_key, self.key.project_id)

    def envelope_url(self, key: RelayKey | None = None) -> str:
        key = key or self.key
        return f"{self.url}/api/{key.project_id}/envelope/"

    def auth(self, key: RelayKey | None = None) -> dict[str, str]:
        key = key or self.key
        return {
            "X-Sentry-Auth": f"Sentry sentry_key={key.public_key}, sentry_version=7,"
            " sentry_client=test/1.0"
        }

    async def new_key(self, **options: Any) -> RelayKey:
        key = await self.keys.create_key(ADMIN, "other", "production", **options)
        await self.ring.load()
        return key


def relay_settings(database_url: str, bootstrap: str, **overrides: Any) -> Settings:
    chosen: dict[str, Any] = {
        "errors_topic": unique_topic("relay-errors"),
        "checkins_topic": unique_topic("relay-checkins"),
        "dlq_topic": unique_topic("relay-dlq"),
        "relay_produce_timeout": 5.0,
        **overrides,
    }
    return load_settings(database_url=database_url, kafka_bootstrap=bootstrap, **chosen)


@pytest.fixture
async def served_relay(fresh_db_url: str, kafka_bootstrap: str) -> AsyncIterator[ServedRelay]:
    settings = relay_settings(fresh_db_url, kafka_bootstrap)
    async for served in serve(settings):
        yield served


async def serve(settings: Settings, **key_options: Any) -> AsyncIterator[ServedRelay]:
    pool = await migrated_pool(settings.database_url.get_secret_value(), 2)
    keys = RelayKeyStore(pool, append_audit, "cli@test")
    key = await keys.create_key(ADMIN, "checkout", "production", **key_options)
    ring = KeyRing(keys.keys_for_relay, settings.relay_keys_refresh)
    await ring.load()
    sender = KafkaSender(settings)
    relay = Relay(settings, ring, sender)
    try:
        async with serving_web(
            relay.app(), "127.0.0.1", 0, "the relay", "RELAY", auto_decompress=False
        ) as url:
            yield ServedRelay(url, settings, relay, keys, ring, key)
    finally:
        relay.close()
        await sender.close()
        await pool.close()
