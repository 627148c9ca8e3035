"""Files only Tidings' own user may read: the database, the key store, the keys.

SQLite creates a database, its ``-wal`` and ``-shm`` with the process's umask, so a
usual umask of 022 left them readable by every local user. Tidings sets the umask
to 077 before it creates anything: new files are 0600, new folders 0700. Files
left readable by an earlier version are narrowed at start-up; folders that
already exist are left as the operator made them.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from tidings.core.settings import Settings
from tidings.storage.db import sqlite_file

PRIVATE_UMASK = 0o077
# A SQLite file and what is created beside it: WAL, shared memory, rollback journal,
# and Tidings' own lock between processes (``db.FileWriteLock``).
SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal", ".write-lock")


def make_storage_private(settings: Settings) -> None:
    """Before anything is created: private umask and folders; loose old files narrowed."""
    os.umask(PRIVATE_UMASK)
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    for url in (settings.resolved_database_url(), settings.resolved_keystore_url()):
        database = sqlite_file(url)
        if database is not None:
            database.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            for suffix in SQLITE_COMPANIONS:
                narrow(Path(f"{database}{suffix}"))


def narrow(path: Path) -> None:
    """Take group and others' access off an existing file of ours."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        return
    if mode & ~0o700:
        path.chmod(mode & 0o700)
