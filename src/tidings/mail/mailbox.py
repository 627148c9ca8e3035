"""The local mailbox: a file of the platform's mails, for development and ``make serve``.

With no relay configured (``TIDINGS_PLATFORM_MAIL_RELAY`` empty), each mail is kept here
instead of sent; a mail the relay refused for good is kept here too, marked failed, so
the operator sees it (``tidings mail list``). One JSON line per mail: its id, kind,
account, time and status in clear, and what a person wrote or reads (the address, the
subject, the body) sealed under the platform's keys, so a copy of the file alone shows
no address and no text. A mail id appears once: keeping a mail again is a no-op, which
makes the job that keeps it idempotent. Appends take a ``flock`` on the file, so
processes sharing the data folder do not interleave their lines.
"""

from __future__ import annotations

import base64
import fcntl
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from tidings.storage.vault import TenantKeys

MAILBOX_FILE = "platform-mailbox.jsonl"
SEALED_FIELD = "platform_mailbox.mail"  # what the sealed part of an entry is bound to


def mailbox_path(data_dir: Path) -> Path:
    return data_dir / MAILBOX_FILE


@dataclass(frozen=True)
class KeptMail:
    """A mail as the mailbox holds it, opened."""

    id: str
    kind: str
    account_id: str | None
    at: datetime
    status: str  # "kept": no relay, here instead of sent; "failed": the relay refused it
    error: str | None
    to: str
    sender: str
    subject: str
    body: str

    def as_json(self) -> dict[str, Any]:
        return {**asdict(self), "at": self.at.isoformat()}


class Mailbox:
    def __init__(self, path: Path) -> None:
        self.path = path

    def keep(self, mail: KeptMail, platform: TenantKeys) -> bool:
        """Append ``mail`` unless its id is there already; whether it was appended."""
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        with os.fdopen(fd, "r+", encoding="utf-8") as file, _locked(file):
            text = file.read()
            if any(entry.get("id") == mail.id for entry in _entries(text)):
                return False
            cut_short = text and not text.endswith("\n")  # a crash mid-line: end it
            file.write(("\n" if cut_short else "") + json.dumps(_seal(mail, platform)) + "\n")
            file.flush()
            os.fsync(file.fileno())
        return True

    def read(self, platform: TenantKeys) -> list[KeptMail]:
        """Every mail, oldest first; none when there is no file yet."""
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        return [_open(entry, platform) for entry in _entries(text)]


@contextmanager
def _locked(file: IO[str]) -> Iterator[None]:
    fcntl.flock(file.fileno(), fcntl.LOCK_EX)
    try:
        file.seek(0)
        yield
    finally:
        fcntl.flock(file.fileno(), fcntl.LOCK_UN)


def _entries(text: str) -> list[dict[str, Any]]:
    entries = []
    for line in text.splitlines():
        try:
            entry = json.loads(line)
        except ValueError:  # a line cut short by a crash: no mail was kept by it
            continue
        if isinstance(entry, dict):
            entries.append(entry)
    return entries


def _seal(mail: KeptMail, platform: TenantKeys) -> dict[str, Any]:
    private = json.dumps({"to": mail.to, "from": mail.sender, "subject": mail.subject,
                          "body": mail.body})
    sealed = platform.encrypt(private, field=SEALED_FIELD)
    return {"id": mail.id, "kind": mail.kind, "account_id": mail.account_id,
            "at": mail.at.isoformat(), "status": mail.status, "error": mail.error,
            "sealed": base64.b64encode(sealed).decode()}


def _open(entry: dict[str, Any], platform: TenantKeys) -> KeptMail:
    private = json.loads(platform.decrypt(base64.b64decode(entry["sealed"]),
                                          field=SEALED_FIELD))
    return KeptMail(id=entry["id"], kind=entry["kind"], account_id=entry["account_id"],
                    at=datetime.fromisoformat(entry["at"]), status=entry["status"],
                    error=entry["error"], to=private["to"], sender=private["from"],
                    subject=private["subject"], body=private["body"])
