"""One local log path on disk: safe opening, whole-record appends, rotation, generations.

Only the log-writer thread (see ``_locallog``) calls :meth:`LogFile.append`, so a slow or hung
filesystem holds up that thread and nothing else.

- **Regular files only.** The path is checked with ``stat`` before it is opened and the open
  descriptor again with ``fstat`` (the path may change in between); the open itself uses
  ``O_NONBLOCK``, so a FIFO or device swapped in at the last moment cannot block it. Anything
  but a regular file is refused with :class:`NotRegularFileError`. A symlink to a regular file
  is followed.
- **Whole records, never a swallowed record.** A batch of whole lines is appended with one
  ``os.write`` on ``O_APPEND``. If the file does not end with a newline (a write that failed
  half-way, e.g. on a full disk), the batch starts with one, so the fragment stays on its own
  line, where readers skip it.
- **Rotation safe across processes.** Every append holds an exclusive ``flock`` on
  ``<log>.lock`` and first checks that its descriptor is still the file at the path (reopening
  if it was rotated or removed), so no process ever writes into a generation being renamed.
  When a batch would take the file past ``max_bytes``, the file is renamed to ``<log>.1``
  (``.1`` to ``.2``, ..., the oldest beyond ``backups`` is replaced) and a new file begun.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

from ._logsettings import LogLimits

__all__ = ["LogFile", "NotRegularFileError", "generations"]

_OPEN_FLAGS = os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC
_LOCK_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC


class NotRegularFileError(OSError):
    """The log path is a FIFO, a device, a socket or a directory: it is never written."""


def _kind(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISDIR, "a directory"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _open_regular(path: Path, flags: int) -> int:
    """Open ``path`` (created 0o600) if it is, or will be, a regular file; else raise."""
    try:
        before = os.stat(path)
    except FileNotFoundError:
        pass
    else:
        if not stat.S_ISREG(before.st_mode):
            msg = f"not a regular file ({_kind(before.st_mode)})"
            raise NotRegularFileError(errno.EINVAL, msg)
    fd = os.open(path, flags, 0o600)
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):  # replaced between the check and the open
        os.close(fd)
        msg = f"not a regular file ({_kind(mode)})"
        raise NotRegularFileError(errno.EINVAL, msg)
    return fd


class LogFile:
    """Appends batches of whole records to one log path and rotates it; not thread-safe."""

    def __init__(self, path: Path, limits: LogLimits) -> None:
        self.path = path
        self.limits = limits
        self._fd = -1
        self._lock_fd = -1

    def close(self) -> None:
        """Close the descriptors (never releases another process's lock)."""
        for fd in (self._fd, self._lock_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self._fd = self._lock_fd = -1

    def append(self, data: bytes) -> None:
        """Append whole lines ``data`` (ending in a newline); raise ``OSError`` on failure."""
        if self._lock_fd < 0:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            lock_path = self.path.with_name(self.path.name + ".lock")
            self._lock_fd = _open_regular(lock_path, _LOCK_FLAGS)
        fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        try:
            size = self._current_size()
            if size > 0 and size + len(data) > self.limits.max_bytes:
                self._rotate()
                size = self._current_size()
            if size > 0 and os.pread(self._fd, 1, size - 1) != b"\n":
                data = b"\n" + data  # a torn line ends here: keep it apart from this batch
            written = os.write(self._fd, data)
            if written != len(data):
                raise OSError(errno.ENOSPC, f"short write ({written} of {len(data)} bytes)")
        finally:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)

    def _current_size(self) -> int:
        """Make sure the descriptor is the file now at the path; return its size."""
        if self._fd >= 0:
            mine = os.fstat(self._fd)
            try:
                there = os.stat(self.path)
            except FileNotFoundError:
                there = None
            if there is not None and (there.st_ino, there.st_dev) == (mine.st_ino, mine.st_dev):
                return mine.st_size
            os.close(self._fd)  # rotated or removed by someone: follow the path
            self._fd = -1
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._fd = _open_regular(self.path, _OPEN_FLAGS)
        return os.fstat(self._fd).st_size

    def _rotate(self) -> None:
        """Shift the generations up by one (the lock is held); the next write begins a file.

        Only the generations that exist are touched, newest last; any beyond ``backups``
        (the oldest, or left by a larger setting) are removed.
        """
        name = self.path.name
        backups = self.limits.backups
        for n, older in sorted(_numbered(self.path), reverse=True):
            if n >= backups:
                os.unlink(older)
            else:
                os.rename(older, self.path.with_name(f"{name}.{n + 1}"))
        if backups == 0:
            os.unlink(self.path)
        else:
            os.rename(self.path, self.path.with_name(f"{name}.1"))
        os.close(self._fd)
        self._fd = -1


def _numbered(path: Path) -> list[tuple[int, Path]]:
    """The previous generations of ``path`` that exist: ``(n, path.n)``, in no order."""
    pattern = re.compile(re.escape(path.name) + r"\.([1-9][0-9]*)")
    found: list[tuple[int, Path]] = []
    try:
        for entry in os.scandir(path.parent):
            match = pattern.fullmatch(entry.name)
            if match is not None:
                found.append((int(match.group(1)), path.with_name(entry.name)))
    except (FileNotFoundError, NotADirectoryError):
        pass
    return found


def generations(path: Path) -> Iterator[Path]:
    """``path``'s generations, oldest first: those of ``path.N``, ..., ``path.1`` that exist,
    then ``path``."""
    for _, older in sorted(_numbered(path), reverse=True):
        yield older
    yield path
