"""Request bodies decompressed as Relay does (gzip, deflate, br, zstd), never past a limit."""

from __future__ import annotations

import mmap
import zlib
from collections.abc import Callable

import cramjam

from mendline.schemas.errors import RelayRefused

__all__ = [
    "MAX_ENCODINGS",
    "MAX_GZIP_MEMBERS",
    "SUPPORTED_ENCODINGS",
    "decode_body",
    "inflate_zlib",
    "needs_decoding",
]

#: What a 415 names in its ``Accept-Encoding`` header, as tower-http's decompression does.
SUPPORTED_ENCODINGS = ("gzip", "deflate", "br", "zstd")

# Old SDKs label an uncompressed body with these: sentry-ruby 5.x sends "", and
# sentry.java.android 2.0.0 "UTF-8" (Relay's middlewares/decompression.rs drops both).
_IDENTITY = frozenset({"", "identity", "utf-8"})
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_RAW_DEFLATE_WBITS = -zlib.MAX_WBITS
# The last byte of a cramjam output buffer is set to one of these before decompressing into
# it: still there afterwards, the output did not reach it (see _decompress_into).
_MARKS = (0xA5, 0x5A)
#: Encodings one body may be wrapped in (``gzip, br``: an SDK uses one).
MAX_ENCODINGS = 2
#: Members a gzip body may hold (RFC 1952 allows several; an SDK sends one): many tiny ones
#: would cost time out of proportion to their bytes.
MAX_GZIP_MEMBERS = 64
# Compressed bytes handed to zlib at once.
_FEED = 64 * 1024


def _over_limit(limit: int, what: str = "the body") -> RelayRefused:
    """The 413 of a body over its limit once decompressed: Relay's words when a body is
    over the route's limit (axum's "length limit exceeded"), with the limit as its cause."""
    return RelayRefused(
        413, "too_large", "length limit exceeded", (f"{what} is over {limit} bytes decompressed",)
    )


def decode_body(body: bytes, content_encoding: str | None, limit: int) -> bytes:
    """Decode a request body by its ``Content-Encoding`` into at most ``limit`` bytes.

    ``gzip`` (``x-gzip``), ``deflate`` (zlib-wrapped, as current Relay reads it, else raw
    deflate, as older Relay did), ``br`` and ``zstd``; none, ``identity``, ``""`` and
    ``UTF-8`` leave the body as it is. Encodings listed together (``gzip, br``, at most
    MAX_ENCODINGS) are undone last first. A decompression bomb costs about ``limit`` bytes
    of memory, never more. An unknown encoding, or too many, is 415
    ``unsupported_encoding``, a body that does not decode 400
    ``bad_compression``, one over the limit 413 ``too_large``. An empty body is returned
    empty, so that the caller answers it as such.
    """
    decoders = _decoders(content_encoding)
    if not body:
        return body
    for decode in reversed(decoders):
        body = decode(body, limit)
    if len(body) > limit:
        raise _over_limit(limit)
    return body


def inflate_zlib(data: bytes, limit: int, what: str = "the body") -> bytes:
    """Inflate a zlib-wrapped stream into at most ``limit`` bytes: 413 ``too_large`` past it
    (``what`` names it in the cause), zlib.error when it does not inflate."""
    return _inflate(data, zlib.MAX_WBITS, limit, what)


def needs_decoding(content_encoding: str | None) -> bool:
    """Whether a body of this ``Content-Encoding`` is to be decompressed (False: it is as it
    came); 415 ``unsupported_encoding`` for one decode_body refuses (an unknown encoding,
    more than MAX_ENCODINGS of them)."""
    return bool(_decoders(content_encoding))


def _decoders(content_encoding: str | None) -> list[_Decoder]:
    tokens = _tokens(content_encoding)
    if len(tokens) > MAX_ENCODINGS:  # each layer may cost the whole limit again
        raise RelayRefused(
            415,
            "unsupported_encoding",
            "unsupported content encoding",
            (f"{len(tokens)} encodings, more than {MAX_ENCODINGS}",),
        )
    return [_decoder(token) for token in tokens]


def _tokens(content_encoding: str | None) -> list[str]:
    if content_encoding is None:
        return []
    tokens = [token.strip().lower() for token in content_encoding.split(",")]
    return [token for token in tokens if token not in _IDENTITY]


_Decoder = Callable[[bytes, int], bytes]


def _decoder(token: str) -> _Decoder:
    decoder = _DECODERS.get(token)
    if decoder is None:
        raise RelayRefused(
            415,
            "unsupported_encoding",
            "unsupported content encoding",
            (f"{token!r} is not one of {', '.join(SUPPORTED_ENCODINGS)}",),
        )
    return decoder


def _gunzip(body: bytes, limit: int) -> bytes:
    try:
        return _inflate(body, _GZIP_WBITS, limit, "the body", members=True)
    except zlib.error as exc:
        raise _corrupt("gzip", exc) from exc


def _deflate(body: bytes, limit: int) -> bytes:
    try:
        return inflate_zlib(body, limit)
    except zlib.error as wrapped_error:
        try:
            return _inflate(body, _RAW_DEFLATE_WBITS, limit, "the body")
        except zlib.error:
            raise _corrupt("deflate", wrapped_error) from wrapped_error


def _brotli(body: bytes, limit: int) -> bytes:
    return _decompress_into(cramjam.brotli.decompress_into, "br", body, limit)


def _zstd(body: bytes, limit: int) -> bytes:
    return _decompress_into(cramjam.zstd.decompress_into, "zstd", body, limit)


_DECODERS: dict[str, _Decoder] = {
    "gzip": _gunzip,
    "x-gzip": _gunzip,
    "deflate": _deflate,
    "br": _brotli,
    "zstd": _zstd,
}


def _inflate(data: bytes, wbits: int, limit: int, what: str, *, members: bool = False) -> bytes:
    """zlib's decompressor asked for one byte more than ``limit`` at most, stream after
    stream when ``members`` (gzip allows several: at most MAX_GZIP_MEMBERS); zlib.error when
    the data is not one.

    The input is fed _FEED bytes at a time: what a stream leaves unread (zlib's
    ``unused_data``, a copy) is then at most that much, however many streams follow, and
    many tiny ones cost at most MAX_GZIP_MEMBERS of them."""
    view = memoryview(data)
    chunks: list[bytes] = []
    size = position = streams = 0
    while position < len(view) or not streams:
        streams += 1
        if streams > 1 and not members:
            raise zlib.error("data follows the end of the compressed stream")
        if streams > MAX_GZIP_MEMBERS:
            raise zlib.error(f"more than {MAX_GZIP_MEMBERS} gzip members")
        decompressor = zlib.decompressobj(wbits)
        while not decompressor.eof:
            if position >= len(view):
                raise zlib.error("the compressed data ends before its stream does")
            piece = view[position : position + _FEED]
            # Output stops at max_length: a bomb is found out after limit + 1 bytes.
            chunk = decompressor.decompress(piece, limit + 1 - size)
            size += len(chunk)
            if size > limit:
                raise _over_limit(limit, what)
            chunks.append(chunk)
            # Not stopped by max_length (size <= limit): the piece was read up to the
            # stream's end, if it came, or whole.
            position += len(piece) - len(decompressor.unused_data)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def _decompress_into(
    decompress: Callable[[bytes, mmap.mmap], int], name: str, body: bytes, limit: int
) -> bytes:
    """cramjam's one-shot decompression into a buffer of ``limit + 1`` bytes: an anonymous
    mapping, so that only the pages written to take memory.

    cramjam fails the same way (DecompressionError) when the output does not fit as when
    the data is corrupt; which it was is read from the buffer, never from the message: the
    buffer is filled up to its end before an overflow fails, so a mark in its last byte that
    is still there means corrupt data. If the output's own last byte equals the mark, the
    second try with another mark tells.
    """
    errors: list[cramjam.DecompressionError] = []
    with mmap.mmap(-1, limit + 1) as buffer:
        for mark in _MARKS:
            buffer[limit] = mark
            try:
                size = decompress(body, buffer)
            except cramjam.DecompressionError as exc:
                if buffer[limit] != mark:
                    raise _over_limit(limit) from exc
                errors.append(exc)
                continue
            if size > limit:
                raise _over_limit(limit)
            return buffer[:size]
    raise _corrupt(name, errors[0]) from errors[0]


def _corrupt(name: str, exc: Exception) -> RelayRefused:
    return RelayRefused(400, "bad_compression", f"invalid {name} body", (str(exc),))
