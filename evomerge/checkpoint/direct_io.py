"""Appending to a file past the page cache (``O_DIRECT``), from a second thread.

A merged checkpoint is made durable before its folder is renamed into place. Through the
page cache that means copying every byte into the cache, having the kernel write it back,
and waiting for that in ``fsync``. Written with ``O_DIRECT`` from page-aligned buffers,
the bytes go from the buffer to the disk: no copy into the cache, and the writes leave
the merging thread free, running on a thread that sleeps in ``pwrite`` while the disk
works. ``benchmarks/durable_write.py`` measures the gain (results in
``benchmarks/RESULTS.md``).

``O_DIRECT`` wants the buffer address, the file offset and the length to be multiples of
the disk's block size. So bytes are gathered into page-aligned chunks of a fixed size,
the last chunk is padded to a whole block, and the caller cuts the file back to its true
length. A file system that refuses ``O_DIRECT`` (older tmpfs, some network and FUSE
ones) gets the same positional writes through the page cache instead.

>>> import os, tempfile
>>> path = os.path.join(tempfile.mkdtemp(), "f")
>>> appender = DirectAppender(path, start=0, chunk_bytes=BLOCK)
>>> appender.write(memoryview(b"abc" * 2000))
>>> appender.finish()
6000
>>> os.truncate(path, 6000); open(path, "rb").read() == b"abc" * 2000
True
"""

from __future__ import annotations

import errno
import mmap
import os
from concurrent.futures import Future, ThreadPoolExecutor

#: alignment of offsets, lengths and buffer addresses; a multiple of every common
#: logical block size (512 or 4096 bytes)
BLOCK = 4096
#: bytes gathered before a write is issued: large enough that the disk streams
CHUNK_BYTES = 8 << 20
#: chunks in flight: one being filled while the others are written
SLOTS = 3


def direct_flag() -> int:
    """``os.O_DIRECT`` where the platform has it (Linux), else 0 (writes are cached)."""
    return getattr(os, "O_DIRECT", 0)


class DirectAppender:
    """Writes a stream of bytes to ``path`` from offset ``start`` on, a chunk at a time.

    ``start`` must be a multiple of :data:`BLOCK`; the file must exist or is created, and
    bytes before ``start`` are left to the caller. :meth:`finish` writes what is left
    (padded with zeros to a whole block) and returns the offset where the stream ends;
    the file may extend past it by the padding. A failed write is raised by the next
    :meth:`write` or by :meth:`finish`.
    """

    def __init__(self, path: os.PathLike | str, start: int,
                 chunk_bytes: int = CHUNK_BYTES, slots: int = SLOTS):
        if start % BLOCK or chunk_bytes % BLOCK or chunk_bytes <= 0:
            raise ValueError(f"start ({start}) and chunk_bytes ({chunk_bytes}) must be "
                             f"positive multiples of {BLOCK}")
        self._plain_fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            self._direct_fd = self._open_direct(path)
        except OSError:
            os.close(self._plain_fd)
            raise
        self._chunks = [mmap.mmap(-1, chunk_bytes) for _ in range(slots)]  # page-aligned
        self._pending: list[Future | None] = [None] * slots
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="evomerge-direct")
        self._current = 0
        self._filled = 0
        self._offset = start  # file offset of the chunk being filled
        #: whether the writes went past the page cache; still answers after close
        self.direct = self._direct_fd is not None

    @staticmethod
    def _open_direct(path: os.PathLike | str) -> int | None:
        flag = direct_flag()
        if not flag:
            return None
        try:
            return os.open(path, os.O_WRONLY | flag)
        except OSError as exc:
            if exc.errno in (errno.EINVAL, errno.EOPNOTSUPP):
                return None  # the file system does not do direct I/O
            raise

    def write(self, data: memoryview) -> None:
        data = data.cast("B")
        while len(data):
            chunk = self._chunks[self._current]
            n = min(len(data), len(chunk) - self._filled)
            chunk[self._filled:self._filled + n] = data[:n]
            self._filled += n
            data = data[n:]
            if self._filled == len(chunk):
                self._issue(len(chunk))

    def finish(self) -> int:
        """Write the last, partial chunk, wait for every write; the stream's end offset."""
        end = self._offset + self._filled
        if self._filled:
            padded = -(-self._filled // BLOCK) * BLOCK
            chunk = self._chunks[self._current]
            chunk[self._filled:padded] = bytes(padded - self._filled)
            self._issue(padded)
        try:
            for slot in range(len(self._pending)):
                self._wait(slot)
        finally:
            self.close()
        return end

    def close(self) -> None:
        """Stop writing and release the file and buffers; pending writes are finished."""
        self._pool.shutdown(wait=True)
        for fd in (self._direct_fd, self._plain_fd):
            if fd is not None:
                os.close(fd)
        self._direct_fd = self._plain_fd = None
        for chunk in self._chunks:
            chunk.close()
        self._chunks = []

    def _issue(self, length: int) -> None:
        """Hand the current chunk to the writer thread and move on to a free one."""
        slot = self._current
        view = memoryview(self._chunks[slot])[:length]
        self._pending[slot] = self._pool.submit(self._write_at, view, self._offset)
        self._offset += length
        self._filled = 0
        self._current = (slot + 1) % len(self._chunks)
        self._wait(self._current)  # the next chunk is reused only once it is on disk

    def _wait(self, slot: int) -> None:
        """Wait for the write of chunk ``slot``, if one is in flight; raise its error."""
        pending, self._pending[slot] = self._pending[slot], None
        if pending is not None:
            pending.result()

    def _write_at(self, view: memoryview, offset: int) -> None:
        try:
            while len(view):
                written = self._pwrite(view, offset)
                view, offset = view[written:], offset + written
        finally:
            view.release()

    def _pwrite(self, view: memoryview, offset: int) -> int:
        """One ``pwrite``; returns the bytes written. Runs on the writer thread only."""
        if self._direct_fd is not None:
            try:
                return os.pwrite(self._direct_fd, view, offset)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                # opened, yet refused: this file system takes no direct writes after all
                os.close(self._direct_fd)
                self._direct_fd, self.direct = None, False
        return os.pwrite(self._plain_fd, view, offset)
