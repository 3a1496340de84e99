"""A lock that holds across processes: an advisory `flock` on a file in the data folder.

Threads of one process each open the file for themselves, so the lock also holds between
threads (Linux `flock` locks belong to an open file, not to a process). The kernel drops the
lock when its holder exits, however it exits, so a killed process never leaves it held; the
file itself stays and is reused.
"""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path


class FileLock:
    """`try_acquire()` or fail at once; `held()` tells whether anybody holds it now."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None
        self._state = threading.Lock()  # guards _fd between threads sharing this object

    def try_acquire(self) -> bool:
        """Take the lock if nobody holds it; False (at once) if somebody does, this object
        included."""
        with self._state:
            if self._fd is not None:
                return False
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            self._fd = fd
            return True

    def release(self) -> None:
        with self._state:
            if self._fd is not None:
                fd, self._fd = self._fd, None
                fcntl.flock(fd, fcntl.LOCK_UN)
                os.close(fd)

    def held(self) -> bool:
        """Whether some process or thread holds the lock now (a probe: it takes the lock and
        gives it back at once when it is free)."""
        if self._fd is not None:
            return True
        if not self.path.exists():
            return False
        probe = FileLock(self.path)
        if probe.try_acquire():
            probe.release()
            return False
        return True
