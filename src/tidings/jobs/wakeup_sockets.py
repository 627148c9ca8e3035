"""Carry worker nudges between processes that share one SQLite database.

SQLite has no ``NOTIFY``. Processes on one database file (``tidings serve`` and a
``tidings worker --jobs webhook.deliver`` beside it, say) each bind a Unix datagram
socket in one directory, private to the user and named after the database, and a
nudge is one datagram, the job kind, to every other socket there. Nudges are
coalesced (one datagram per kind and peer per turn of the event loop) and carry
only a job kind, never data. A nudge lost (a full socket buffer, a peer that is
just starting) costs at most one poll interval; the job rows are the truth.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import secrets
import socket
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy.engine import make_url

from tidings.core.logs import get_logger
from tidings.jobs.wakeups import Wakeups

PEERS_REFRESH_SECONDS = 1.0  # a process started later is nudged from then on
MAX_DATAGRAM = 64  # longer than any job kind; anything longer is not ours
log = get_logger("tidings.wakeups")


def socket_directory(database_url: str) -> Path:
    """One short directory per database file, under the temporary directory.

    Short because a socket path may not exceed 107 bytes; per user because only
    this user's processes may nudge them; named after the file's absolute path, so
    processes started from different directories meet.
    """
    database = Path(make_url(database_url).database or "").resolve()
    digest = hashlib.sha256(str(database).encode()).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"tidings-{os.getuid()}-{digest}"


class SocketWakeupBridge:
    def __init__(self, directory: Path, wakeups: Wakeups, kinds: Iterable[str]) -> None:
        self._directory, self._wakeups = directory, wakeups
        self._kinds = frozenset(kinds)
        self._path = directory / f"{os.getpid()}-{secrets.token_hex(4)}.sock"
        self._sock: socket.socket | None = None
        self._pending: set[str] = set()
        self._flush_scheduled = False
        self._peers: list[str] = []
        self._peers_read_at = float("-inf")

    @property
    def path(self) -> Path:
        return self._path

    async def start(self) -> None:
        """Bind this process's socket, then publish its nudges to the others."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.setblocking(False)
        try:
            self._bind(sock)
        except BaseException:
            sock.close()
            raise
        self._sock = sock
        asyncio.get_running_loop().add_reader(sock.fileno(), self._receive)
        self._wakeups.publisher = self.publish

    def _bind(self, sock: socket.socket) -> None:
        for _ in range(3):  # the last process to stop may remove the directory meanwhile
            self._directory.mkdir(mode=0o700, exist_ok=True)
            _check_private(self._directory)
            try:
                sock.bind(str(self._path))
                return
            except FileNotFoundError:
                continue
        raise RuntimeError(f"could not bind a wake-up socket in {self._directory}")

    async def stop(self) -> None:
        self._wakeups.publisher = None
        if self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        with contextlib.suppress(FileNotFoundError):
            self._path.unlink()
        with contextlib.suppress(OSError):  # only if no other process is left in it
            self._directory.rmdir()

    def publish(self, kind: str) -> None:
        """Queue a nudge for the other processes; sent at the next turn of the loop."""
        if kind not in self._kinds or self._sock is None:
            return
        self._pending.add(kind)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        kinds, self._pending = self._pending, set()
        if self._sock is None:
            return
        for peer in list(self._current_peers()):  # _forget edits the list
            for kind in kinds:
                try:
                    self._sock.sendto(kind.encode(), peer)
                except (FileNotFoundError, ConnectionRefusedError):
                    self._forget(peer)  # a process that is gone, or crashed
                    break
                except BlockingIOError:
                    break  # its queue is full of nudges already
                except OSError:
                    log.warning("wakeup_publish_failed")  # the peer will poll instead
                    break

    def _current_peers(self) -> list[str]:
        now = time.monotonic()
        if now - self._peers_read_at >= PEERS_REFRESH_SECONDS:
            own = self._path.name
            with os.scandir(self._directory) as entries:
                self._peers = [entry.path for entry in entries
                               if entry.name.endswith(".sock") and entry.name != own]
            self._peers_read_at = now
        return self._peers

    def _forget(self, peer: str) -> None:
        with contextlib.suppress(ValueError):
            self._peers.remove(peer)
        with contextlib.suppress(OSError):
            os.unlink(peer)

    def _receive(self) -> None:
        while self._sock is not None:
            try:
                data = self._sock.recv(MAX_DATAGRAM + 1)
            except (BlockingIOError, InterruptedError):
                return
            kind = data.decode("ascii", errors="replace")
            if kind in self._kinds:
                self._wakeups.wake_local(kind)


def _check_private(directory: Path) -> None:
    """Refuse a directory another user could write to: they could nudge us (harmless),
    or put a socket of theirs among our peers."""
    status = directory.lstat()
    if status.st_uid != os.getuid() or status.st_mode & 0o077 or directory.is_symlink():
        raise RuntimeError(f"{directory} must be a directory of this user only (mode 0700)")
