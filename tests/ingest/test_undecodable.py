"""Which errors out of a fetch mean "this record batch cannot be decoded": a table over the
errors aiokafka's own decoding raises on real bytes, and the ones it raises for outages."""

from __future__ import annotations

import pytest
from aiokafka.codec import gzip_decode, zstd_decode
from aiokafka.errors import (
    ConsumerStoppedError,
    CorruptRecordException,
    IllegalOperation,
    KafkaConnectionError,
    KafkaTimeoutError,
    NotLeaderForPartitionError,
    UnsupportedCodecError,
)
from aiokafka.record.default_records import DefaultRecordBatch
from aiokafka.record.memory_records import MemoryRecords

from mendline.ingest.consumer import undecodable
from tests.integration.kafka_helpers import record_batch


def _raised_by(decode: object, data: bytes) -> BaseException:
    try:
        decode(data)  # type: ignore[operator]
    except Exception as exc:
        return exc
    raise AssertionError("decoding garbage did not fail")


def _read_records(data: bytes) -> None:
    """What aiokafka's fetcher does with a fetched batch: check the CRC, then iterate."""
    batch = MemoryRecords(data).next_batch()
    assert isinstance(batch, DefaultRecordBatch)
    if not batch.validate_crc():
        raise CorruptRecordException("Invalid CRC")
    list(batch)


@pytest.mark.parametrize(
    ("error", "verdict"),
    [
        (_raised_by(_read_records, record_batch([b"x"], bad_crc=True)), True),
        (_raised_by(_read_records, record_batch([b"x"], codec=4)), True),  # zstd, not zstd
        (_raised_by(zstd_decode, b"not zstd"), True),
        (_raised_by(gzip_decode, b"not gzip"), True),
        (UnsupportedCodecError("Libraries for lz4 compression codec not found"), True),
        (KafkaConnectionError("no broker"), False),
        (KafkaTimeoutError(), False),
        (NotLeaderForPartitionError(), False),
        (ConsumerStoppedError(), False),
        (IllegalOperation("paused"), False),
    ],
)
def test_only_decoding_errors_are_undecodable(error: BaseException, verdict: bool) -> None:
    assert undecodable(error) is verdict
