"""A size-capped, append-only disk spool of encoded events, read back oldest first.

Layout: ``<root>/slot-<n>/<seq>.spool``, one record a line as ``<key> <json>``. A process
holds its slot with an exclusive ``flock`` on ``slot-<n>/.lock``, so forked workers each take
their own slot, and a restarted process takes over (and sends) what a dead one left behind;
a live one adopts (``adopt_orphans``) the slots that exited processes left, so what a forked
child spooled before ``os._exit`` is sent by its parent or a sibling.
Records are written to the OS without fsync: they survive the process, not the machine.

The spool holds error events, which may carry the app's data, so it is private: folders are
0700 and files 0600 whatever the umask, a folder someone else owns is refused (no spool at
all), and no file is opened through a symlink, so a link planted in a shared folder cannot
redirect a write (or a truncation) to another file.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Record", "Spool", "private_dir"]

#: (key, value): the Kafka record key and the encoded event.
Record = tuple[bytes, bytes]

_SUFFIX = ".spool"
_FIRST_SEQ = 1_000_000_000  # room below for push_front()
_NEW = os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_EXISTING = os.O_NOFOLLOW | os.O_CLOEXEC

log = logging.getLogger("mendline.ingest")


@dataclass(slots=True)
class _Segment:
    seq: int
    path: Path
    records: int
    size: int
    exists: bool = False  # created by us (or found at start): opened without O_EXCL


class Spool:
    """Events waiting on disk while Kafka is unreachable.

    Each call holds a lock: in a forked child the app's threads append while the shipper
    thread sends (peek, then consume_peeked or push_front).
    """

    def __init__(
        self,
        root: Path,
        max_bytes: int,
        segment_bytes: int = 1024 * 1024,
        *,
        weigh: Callable[[bytes], int] | None = None,
    ) -> None:
        """Take a free slot under ``root`` (made private, see the module docstring). ``weigh``
        says what a record's value stands for, summed in ``dropped_weight`` when the cap
        drops it (an event rolled up from many occurrences).

        Raises OSError when there is no usable slot, ``root`` or a slot is someone else's,
        or a symlink stands where the lock file goes: the caller then runs without a spool.
        """
        self.max_bytes = max_bytes
        self._segment_bytes = min(segment_bytes, max(max_bytes // 4, 1024))
        self._lock_fd, self.path = _take_slot(root)
        self._mutex = threading.RLock()  # push_front() may call append()
        self._segments: list[_Segment] = []
        self._cursor = 0  # records of the head segment already sent
        self._peeked = 0  # records of the head segment handed out by peek(), not yet confirmed
        self._head_lines: tuple[tuple[int, int], list[bytes]] | None = None
        self._size = 0
        self.records = 0
        self.dropped = 0
        self._weigh = weigh
        #: What the records the cap dropped stood for, by ``weigh`` (each 1 without it).
        self.dropped_weight = 0
        for segment in _load_segments(self.path):
            self._segments.append(segment)
            self._size += segment.size
            self.records += segment.records

    def __len__(self) -> int:
        return self.records

    def append(self, records: list[Record]) -> int:
        """Write records after the newest; returns how many old ones the cap pushed out."""
        with self._mutex:
            if not records:
                return 0
            data = b"".join(key + b" " + value + b"\n" for key, value in records)
            tail = self._segments[-1] if self._segments else None
            if tail is None or tail.size >= self._segment_bytes:
                seq = tail.seq + 1 if tail else _FIRST_SEQ
                tail = _Segment(seq, self.path / f"{seq:012d}{_SUFFIX}", 0, 0)
                self._segments.append(tail)
            self._write(tail, data, "ab")
            tail.records += len(records)
            self.records += len(records)
            return self._enforce_cap()

    def push_front(self, records: list[Record]) -> int:
        """Write records before the oldest (they failed to send and are older than the rest)."""
        with self._mutex:
            if not records:
                return 0
            self._peeked = 0
            if not self._segments:
                return self.append(records)
            self._compact_head()
            seq = self._segments[0].seq - 1
            head = _Segment(seq, self.path / f"{seq:012d}{_SUFFIX}", 0, 0)
            self._write(head, b"".join(k + b" " + v + b"\n" for k, v in records), "wb")
            head.records = len(records)
            self._segments.insert(0, head)
            self.records += len(records)
            return self._enforce_cap()

    def peek(self, limit: int) -> list[Record]:
        """Up to ``limit`` of the oldest records, without removing them; see consume_peeked()."""
        with self._mutex:
            self._peeked = 0
            if not self._segments:
                return []
            head = self._segments[0]
            cached = self._head_lines
            if cached is None or cached[0] != (head.seq, head.size):
                # Every record ends with a newline; whatever follows the last one is not a record.
                cached = ((head.seq, head.size), _read(head.path).split(b"\n")[:-1])
                self._head_lines = cached  # a full segment is read once, not once per peek
            lines = cached[1][self._cursor : self._cursor + limit]
            out: list[Record] = []
            for line in lines:
                if line:
                    key, _, value = line.partition(b" ")
                    out.append((key, value))
            self._peeked = len(out)
            return out

    def consume_peeked(self) -> None:
        """Forget the records the last peek() returned (they were sent, or failed and were
        pushed back to the front). Nothing happens if the cap dropped them meanwhile."""
        with self._mutex:
            if not self._segments or not self._peeked:
                return
            head = self._segments[0]
            self._cursor += self._peeked
            self.records -= self._peeked
            self._peeked = 0
            if self._cursor >= head.records:
                self._drop_head()

    def close(self) -> None:
        """Release the slot (the files stay for the next owner)."""
        with self._mutex:
            if self._lock_fd >= 0:
                os.close(self._lock_fd)
                self._lock_fd = -1

    def abandon(self) -> None:
        """Forget the slot in a forked child without unlocking the parent's copy of the lock.

        Never takes the mutex: the fork may have copied it held by the parent's shipper."""
        if self._lock_fd >= 0:
            os.close(self._lock_fd)
            self._lock_fd = -1

    def adopt_orphans(self) -> int:
        """Move what exited processes left in other slots of this root into this spool;
        returns how many records came. A slot a live process holds is left alone (its lock
        is taken without waiting), so this is cheap to call now and then."""
        adopted = 0
        for slot in sorted(self.path.parent.glob("slot-*")):
            if slot == self.path or not any(slot.glob(f"*{_SUFFIX}")):
                continue
            try:
                fd = _try_slot(slot)
            except OSError:
                continue
            if fd is None:
                continue
            try:
                for segment in _load_segments(slot):
                    lines = _read(segment.path).split(b"\n")[:-1]
                    pairs = (line.partition(b" ") for line in lines if line)
                    records = [(key, value) for key, _, value in pairs]
                    self.append(records)
                    segment.path.unlink(missing_ok=True)  # after the append: at least once
                    adopted += len(records)
            finally:
                os.close(fd)
        return adopted

    def _write(self, segment: _Segment, data: bytes, mode: str) -> None:
        before = segment.size if mode == "ab" else 0
        # A segment we have not made yet is opened O_EXCL: nothing already in its place (a
        # symlink above all) is ever written to.
        flags = os.O_WRONLY | (_EXISTING if segment.exists else _NEW)
        fd = _open_private(segment.path, flags | (os.O_APPEND if mode == "ab" else os.O_TRUNC))
        segment.exists = True
        try:
            _write_all(fd, data)
        except OSError:
            # Leave no partial record behind for the next append to be glued onto.
            with contextlib.suppress(OSError):
                os.ftruncate(fd, before)
            raise
        finally:
            os.close(fd)
        segment.size += len(data)
        self._size += len(data)

    def _weight(self, head: _Segment) -> int:
        """What the records of ``head`` not sent yet stand for (read only when it is dropped)."""
        assert self._weigh is not None
        try:
            lines = _read(head.path).split(b"\n")[self._cursor : -1]
        except OSError:
            return head.records - self._cursor
        return sum(self._weigh(line.partition(b" ")[2]) for line in lines if line)

    def _drop_head(self) -> None:
        head = self._segments.pop(0)
        self._size -= head.size
        self._cursor = 0
        self._peeked = 0
        head.path.unlink(missing_ok=True)

    def _compact_head(self) -> None:
        """Rewrite the head segment without the records already consumed."""
        if self._cursor == 0:
            return
        head = self._segments[0]
        rest = b"".join(line + b"\n" for line in _read(head.path).split(b"\n")[self._cursor : -1])
        # A new file renamed over the old one: a crash leaves one or the other, whole.
        temporary = head.path.with_suffix(".tmp")
        temporary.unlink(missing_ok=True)  # a leftover (or a planted link) is removed, not used
        fd = _open_private(temporary, os.O_WRONLY | _NEW)
        try:
            _write_all(fd, rest)
        finally:
            os.close(fd)
        temporary.replace(head.path)
        self._size += len(rest) - head.size
        head.size = len(rest)
        head.records -= self._cursor
        self._cursor = 0

    def _enforce_cap(self) -> int:
        dropped = 0
        while self._size > self.max_bytes and len(self._segments) > 1:
            head = self._segments[0]
            lost = head.records - self._cursor
            self.dropped_weight += self._weight(head) if self._weigh is not None else lost
            self._drop_head()
            self.records -= lost
            dropped += lost
        self.dropped += dropped
        return dropped


def _load_segments(slot: Path) -> list[_Segment]:
    """The segments of ``slot``, oldest first; a record cut short at the end is cut off."""
    segments = []
    for path in sorted(slot.glob(f"*{_SUFFIX}")):
        if not path.stem.isdigit():
            continue
        try:
            fd = _open_private(path, os.O_RDWR | _EXISTING)
        except OSError as exc:
            log.warning("mendline: skipping spool file %s (%s)", path, exc.strerror)
            if path.is_symlink():  # removing a link leaves what it points to alone
                path.unlink(missing_ok=True)
            continue
        try:
            data = _read_all(fd)
            complete = data.rfind(b"\n") + 1
            if complete < len(data):  # the last write was cut short (a kill, a full disk)
                os.ftruncate(fd, complete)
        finally:
            os.close(fd)
        lines = data.count(b"\n", 0, complete)
        if lines == 0:
            path.unlink(missing_ok=True)
            continue
        segments.append(_Segment(int(path.stem), path, lines, complete, exists=True))
    return segments


def private_dir(path: Path, *, follow: bool = True, tighten: bool = True) -> None:
    """Make ``path`` a folder only we can use: create it 0700, or tighten ours to 0700
    (``tighten=False`` leaves the mode of a folder that was there already: a spool root the
    user named may be shared, and what is inside it is private anyway).

    Raises OSError (PermissionError) if it is someone else's: we neither write into it nor
    change it. ``follow=False`` refuses a symlink in its place; with True a symlinked folder
    (a ~/.cache on another disk) is fine as long as the folder it leads to is ours.
    """
    path.parent.mkdir(parents=True, exist_ok=True)  # the user's own folders, left as they are
    try:
        path.mkdir(mode=0o700)
        created = True
    except FileExistsError:
        created = False
    info = os.stat(path) if follow else os.lstat(path)
    if not stat.S_ISDIR(info.st_mode):
        kind = "a symlink" if stat.S_ISLNK(info.st_mode) else "not a folder"
        raise OSError(errno.ENOTDIR, f"{kind}, not used for the spool", str(path))
    if info.st_uid != os.geteuid():
        raise PermissionError(
            errno.EPERM, f"owned by uid {info.st_uid}, not us; not used for the spool", str(path)
        )
    if created or (tighten and stat.S_IMODE(info.st_mode) != 0o700):
        os.chmod(path, 0o700)  # mkdir's mode went through the umask (which may drop our bits)


def _open_private(path: Path, flags: int) -> int:
    """os.open with mode 0600 whatever the umask; a symlink at ``path`` is refused."""
    try:
        fd = os.open(path, flags, 0o600)
    except OSError as exc:
        if path.is_symlink():  # ELOOP (O_NOFOLLOW) or EEXIST (O_EXCL): say what it is
            raise OSError(exc.errno, "a symlink; refused, not followed", str(path)) from exc
        raise
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.geteuid():
            raise OSError(errno.EPERM, "not a file of ours; refused", str(path))
        if stat.S_IMODE(info.st_mode) != 0o600:
            os.fchmod(fd, 0o600)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _read_all(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 1 << 20):
        chunks.append(chunk)
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read(path: Path) -> bytes:
    fd = _open_private(path, os.O_RDONLY | _EXISTING)
    try:
        return _read_all(fd)
    finally:
        os.close(fd)


def _take_slot(root: Path) -> tuple[int, Path]:
    private_dir(root)
    for n in range(1024):
        slot = root / f"slot-{n}"
        fd = _try_slot(slot)
        if fd is not None:
            return fd, slot
    raise OSError(f"no free spool slot under {root}")


def _try_slot(slot: Path) -> int | None:
    """The locked lock file of ``slot`` (made private), or None when a live process holds it."""
    private_dir(slot, follow=False)
    fd = _open_private(slot / ".lock", os.O_RDWR | os.O_CREAT | _EXISTING)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd
