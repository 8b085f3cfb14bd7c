"""Request bodies decompressed as Relay does, from real compressed payloads, and bombs refused
without taking more memory than the limit."""

from __future__ import annotations

import gzip
import random
import subprocess
import sys
import textwrap
import zlib
from collections.abc import Callable
from pathlib import Path

import cramjam
import pytest

from mendline.ingest.relay._encoding import (
    MAX_ENCODINGS,
    MAX_GZIP_MEMBERS,
    SUPPORTED_ENCODINGS,
    decode_body,
    needs_decoding,
)
from mendline.schemas.errors import RelayRefused

ENVELOPE = (Path(__file__).parent / "data" / "python_exception.envelope").read_bytes()
LIMIT = 1024 * 1024
ROOT = Path(__file__).resolve().parents[3]


def raw_deflate(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(data) + compressor.flush()


def brotli(data: bytes) -> bytes:
    return bytes(cramjam.brotli.compress(data, level=4))  # sentry-python's quality


def zstd(data: bytes) -> bytes:
    return bytes(cramjam.zstd.compress(data))


COMPRESSORS: list[tuple[str, Callable[[bytes], bytes]]] = [
    ("gzip", gzip.compress),
    ("x-gzip", gzip.compress),
    ("GZIP", gzip.compress),  # encodings are case-insensitive
    (" gzip ", gzip.compress),
    ("deflate", zlib.compress),  # zlib-wrapped, as current Relay reads it
    ("deflate", raw_deflate),  # raw, as older Relay read it
    ("br", brotli),
    ("zstd", zstd),
]


@pytest.mark.parametrize(("encoding", "compress"), COMPRESSORS)
def test_a_compressed_envelope_decodes_to_its_bytes(
    encoding: str, compress: Callable[[bytes], bytes]
) -> None:
    assert decode_body(compress(ENVELOPE), encoding, LIMIT) == ENVELOPE


@pytest.mark.parametrize("encoding", [None, "", "identity", "UTF-8", "utf-8", " UTF-8 "])
def test_no_encoding_or_an_old_sdks_label_is_the_body_as_it_is(encoding: str | None) -> None:
    # sentry-ruby 5.x sends "", sentry.java.android 2.0.0 "UTF-8"
    assert decode_body(ENVELOPE, encoding, LIMIT) == ENVELOPE


def test_encodings_listed_together_are_undone_last_first() -> None:
    body = brotli(gzip.compress(ENVELOPE))  # gzip applied first, then br
    assert decode_body(body, "gzip, br", LIMIT) == ENVELOPE
    assert decode_body(gzip.compress(ENVELOPE), "identity, gzip", LIMIT) == ENVELOPE


def test_gzip_of_several_members_is_their_concatenation() -> None:
    body = gzip.compress(ENVELOPE[:100]) + gzip.compress(ENVELOPE[100:])
    assert decode_body(body, "gzip", LIMIT) == ENVELOPE
    # Members whose compressed bytes span the pieces zlib is fed, up to the most allowed.
    parts = [random.Random(n).randbytes(100_000) for n in range(MAX_GZIP_MEMBERS)]
    body = b"".join(gzip.compress(part, mtime=0) for part in parts)
    assert decode_body(body, "gzip", 8 * LIMIT) == b"".join(parts)


def test_more_than_two_encodings_are_refused_before_any_is_undone() -> None:
    # Each layer may cost the whole limit again: a long Content-Encoding is no way in.
    body = gzip.compress(gzip.compress(gzip.compress(ENVELOPE)))
    with pytest.raises(RelayRefused) as refused:
        decode_body(body, "gzip, gzip, gzip", LIMIT)
    assert (refused.value.status, refused.value.reason) == (415, "unsupported_encoding")
    assert refused.value.causes == (f"3 encodings, more than {MAX_ENCODINGS}",)


@pytest.mark.parametrize(
    ("encoding", "needed"),
    [(None, False), ("", False), ("identity", False), ("UTF-8", False), ("gzip", True)],
)
def test_whether_a_body_needs_decoding(encoding: str | None, needed: bool) -> None:
    assert needs_decoding(encoding) is needed
    with pytest.raises(RelayRefused):  # and what it could not decode is said at once
        needs_decoding(f"{encoding or 'identity'}, compress")


def test_a_gzip_body_of_too_many_members_is_refused_however_small() -> None:
    # Empty members decompress to nothing: 80,000 of them (1.6 MB) cost time, not bytes.
    members = gzip.compress(b"", mtime=0) * 80_000
    with pytest.raises(RelayRefused) as refused:
        decode_body(members, "gzip", LIMIT)
    assert (refused.value.status, refused.value.reason) == (400, "bad_compression")
    assert refused.value.causes == (f"more than {MAX_GZIP_MEMBERS} gzip members",)


@pytest.mark.parametrize("encoding", ["compress", "lz4", "snappy", "gzip, lzma", "bzip2"])
def test_an_unknown_encoding_is_a_415(encoding: str) -> None:
    with pytest.raises(RelayRefused) as refused:
        decode_body(gzip.compress(ENVELOPE), encoding, LIMIT)
    assert (refused.value.status, refused.value.reason) == (415, "unsupported_encoding")
    assert "gzip, deflate, br, zstd" in refused.value.causes[0]
    assert SUPPORTED_ENCODINGS == ("gzip", "deflate", "br", "zstd")


def test_an_empty_body_stays_empty_whatever_its_encoding() -> None:
    assert decode_body(b"", "gzip", LIMIT) == b""
    with pytest.raises(RelayRefused):
        decode_body(b"", "lz4", LIMIT)  # but an unknown encoding is still one


@pytest.mark.parametrize(
    ("encoding", "body"),
    # gzip's header holds a time: mtime=0, so that the parameters (their ids) are the same
    # in every process that collects them (pytest-xdist's workers compare their lists).
    [
        ("gzip", b"not gzip at all"),
        ("gzip", gzip.compress(ENVELOPE, mtime=0)[:-8]),  # cut short: no trailer
        ("gzip", gzip.compress(ENVELOPE, mtime=0)[:50]),
        ("gzip", gzip.compress(ENVELOPE, mtime=0) + b"garbage"),  # not another member
        ("x-gzip", zlib.compress(ENVELOPE)),  # zlib is not gzip
        ("deflate", b"\x00\x01\x02 not deflate"),
        ("deflate", zlib.compress(ENVELOPE)[:-6]),
        ("deflate", zlib.compress(ENVELOPE) + b"tail"),
        ("br", b"\xff\xff\xff not brotli"),
        ("br", brotli(ENVELOPE)[:-5]),
        ("zstd", b"not zstd"),
        ("zstd", zstd(ENVELOPE)[:-5]),
        ("zstd", gzip.compress(ENVELOPE, mtime=0)),
    ],
)
def test_a_body_that_does_not_decode_is_a_400(encoding: str, body: bytes) -> None:
    with pytest.raises(RelayRefused) as refused:
        decode_body(body, encoding, LIMIT)
    assert (refused.value.status, refused.value.reason) == (400, "bad_compression")
    assert refused.value.causes  # the decoder's words


@pytest.mark.parametrize(("encoding", "compress"), COMPRESSORS)
def test_the_limit_is_on_the_decompressed_size_and_inclusive(
    encoding: str, compress: Callable[[bytes], bytes]
) -> None:
    body = compress(ENVELOPE)
    assert decode_body(body, encoding, len(ENVELOPE)) == ENVELOPE
    with pytest.raises(RelayRefused) as refused:
        decode_body(body, encoding, len(ENVELOPE) - 1)
    assert (refused.value.status, refused.value.reason) == (413, "too_large")
    assert refused.value.detail == "length limit exceeded"


def test_an_uncompressed_body_over_the_limit_is_a_413() -> None:
    with pytest.raises(RelayRefused) as refused:
        decode_body(ENVELOPE, None, len(ENVELOPE) - 1)
    assert refused.value.status == 413


@pytest.mark.parametrize(
    "output",
    [
        b"\xa5" * 2000,  # the output's last byte is the first mark: told by the second
        b"\x5a" * 2000,
        bytes(range(256)) * 8,
    ],
)
@pytest.mark.parametrize("compress", [brotli, zstd])
def test_an_overflow_is_told_from_corrupt_data_whatever_the_bytes(
    output: bytes, compress: Callable[[bytes], bytes]
) -> None:
    encoding = "br" if compress is brotli else "zstd"
    for limit in (len(output) - 1, 1000, 1):
        with pytest.raises(RelayRefused) as refused:
            decode_body(compress(output), encoding, limit)
        assert refused.value.status == 413, limit


def bomb(encoding: str) -> bytes:
    """A gigabyte of zeros, compressed (gzip: 64 members of 16 MiB; brotli at
    sentry-python's quality)."""
    piece, pieces = bytes(16 * 1024 * 1024), 64
    if encoding == "gzip":
        return gzip.compress(piece, 6) * pieces
    if encoding == "deflate":
        compressor = zlib.compressobj(6, zlib.DEFLATED, zlib.MAX_WBITS)
        return b"".join(compressor.compress(piece) for _ in range(pieces)) + compressor.flush()
    streaming = cramjam.brotli.Compressor(4) if encoding == "br" else cramjam.zstd.Compressor()
    for _ in range(pieces):
        streaming.compress(piece)
    return bytes(streaming.finish())


# Decodes the body read from a file with a 1 MiB limit, in a fresh interpreter, and reports
# the answer, the seconds it took and how much the interpreter's peak memory grew (KiB).
DECODE = textwrap.dedent(
    """
    import resource, sys, time
    from mendline.ingest.relay._encoding import decode_body
    from mendline.schemas.errors import RelayRefused

    with open(sys.argv[2], "rb") as file:
        body = file.read()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    started = time.perf_counter()
    try:
        decode_body(body, sys.argv[1], 1024 * 1024)
        status = 200
    except RelayRefused as refused:
        status = refused.status
    seconds = time.perf_counter() - started
    print(status, seconds, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
    """
)


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "br", "zstd"])
def test_a_decompression_bomb_is_refused_quickly_and_in_little_memory(
    encoding: str, tmp_path: Path
) -> None:
    body = bomb(encoding)
    assert len(body) < 2 * 1024 * 1024  # a gigabyte, sent in at most 2 MiB
    (tmp_path / "body").write_bytes(body)
    run = subprocess.run(
        [sys.executable, "-c", DECODE, encoding, str(tmp_path / "body")],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
        cwd=ROOT,  # the mendline of this checkout
    )
    status, seconds, grown_kib = (float(word) for word in run.stdout.split())
    assert status == 413
    assert seconds < 1.0
    # The peak grew by the 1 MiB limit and the decoders' own buffers, not by a gigabyte.
    assert grown_kib < 8 * 1024, grown_kib
