"""The canary scan: is a person (a number, an address, a text) still anywhere, in
clear or in a form that a live key can turn back into them?

What it looks for (privacy-requirements.md, "canary scan"):

- **in clear**, in normalised forms: E.164, national format, digits only, with
  separators; lower-cased, URL-encoded, base64;
- **reversible**: a blind index of the value under any live key and label (an HMAC a
  holder of the key can recompute from a guess), and any ciphertext that a live key
  (an account's, the platform's, a person's) decrypts to text holding a clear form.

Where: every table of the database, row by row (what a dump holds); on SQLite the
database's files byte by byte, its write-ahead log and journal included (deleted rows
linger in free pages); and any files or folders named (logs, exports, backups).

It reports where and in which form, never the value; ``tidings privacy scan`` exits
non-zero on a find. It reads everything and tries every live key on a ciphertext its
own key does not open: a tool for tests, drills and audits, not for the hot path.
"""

from __future__ import annotations

import base64
import urllib.parse
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import phonenumbers
from sqlalchemy import Table, select
from sqlalchemy.engine import make_url

from tidings.core.services import Services
from tidings.messaging.addresses import AddressError, normalize_e164, normalize_email
from tidings.storage.ciphers import FieldCipher, VaultError
from tidings.storage.db import SYSTEM, Base
from tidings.storage.keystore import tenant_keys_table
from tidings.storage.subject_keys import ciphers_of
from tidings.storage.vault import PLATFORM_KEYRING, TenantKeys

__all__ = ["Canary", "Finding", "ScanReport", "canary_forms", "scan"]

# Every label a blind index is taken under (a value's index is the HMAC of the value
# and its label): each is tried under every live key.
INDEX_LABELS = ("messages.to", "whatsapp_windows.customer", "verified_numbers.number",
                "phone_numbers.number", "users.email", "rate_limits.address")
# A ciphertext is bound to its column's label, ``<table>.<column without _enc>``, but
# for these.
_LABELS = {("privacy_requests", "rectify_enc"): "privacy_requests.subject"}
_CHUNK = 1000
_FILE_CHUNK = 1 << 20


@dataclass(frozen=True)
class Canary:
    kind: str  # number, email or text
    value: str

    @classmethod
    def number(cls, raw: str) -> Canary:
        try:
            return cls("number", normalize_e164(raw))
        except AddressError as exc:
            raise ValueError(f"not a phone number: {exc}") from None

    @classmethod
    def email(cls, raw: str) -> Canary:
        try:
            return cls("email", normalize_email(raw))
        except AddressError as exc:
            raise ValueError(f"not an e-mail address: {exc}") from None

    @classmethod
    def text(cls, raw: str) -> Canary:
        if len(raw.strip()) < 8:
            raise ValueError("a text canary needs 8 characters or more: a shorter one "
                             "matches by chance")
        return cls("text", raw.strip())


@dataclass(frozen=True)
class Finding:
    store: str  # database, file
    where: str  # table.column row, or a path and offset
    form: str  # which form was found: e164, national, blind index, decrypts, …
    canary: str  # the canary's kind and position, never its value


@dataclass
class ScanReport:
    findings: list[Finding] = field(default_factory=list)
    rows: int = 0
    files: int = 0
    bytes: int = 0

    @property
    def clean(self) -> bool:
        return not self.findings


def canary_forms(canary: Canary) -> dict[str, str]:
    """The clear forms of the canary, by name."""
    value = canary.value
    forms = {"as given": value, "lower-cased": value.lower(),
             "url-encoded": urllib.parse.quote(value, safe=""),
             "base64": base64.b64encode(value.encode()).decode()}
    if canary.kind == "number":
        parsed = phonenumbers.parse(value)
        national = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL)
        forms.update({
            "digits": value.lstrip("+"),
            "national": national,
            "national digits": "".join(c for c in national if c.isdigit()),
            "with separators": phonenumbers.format_number(
                parsed, phonenumbers.PhoneNumberFormat.INTERNATIONAL),
        })
    return {name: form for name, form in forms.items() if form}


@dataclass
class _Needles:
    """What to look for: each clear form and each blind index, named."""

    by_text: dict[str, tuple[str, str]]  # text → (form, canary label)
    clear: dict[str, tuple[str, str]]

    def in_text(self, text: str) -> Iterator[tuple[str, str]]:
        for needle, found in self.by_text.items():
            if needle in text:
                yield found

    def in_clear(self, text: str) -> Iterator[tuple[str, str]]:
        lowered = text.lower()
        for needle, found in self.clear.items():
            if needle.lower() in lowered:
                yield found


async def scan(rt: Services, canaries: Sequence[Canary], *, paths: Iterable[Path] = (),
               accounts: Sequence[str] | None = None) -> ScanReport:
    """Search for ``canaries``; with ``accounts``, reversible forms only under those
    accounts' keys (and the platform's): the same number is another account's own
    record in that account, which an erasure in this one must leave alone."""
    if not canaries:
        raise ValueError("name at least one canary: a number, an address or a text")
    keyrings = await _live_keyrings(rt, accounts)
    needles = _needles(canaries, keyrings.values())
    report = ScanReport()
    await _scan_database(rt, needles, keyrings, report)
    for path in [*_database_files(rt), *paths]:
        _scan_path(path, needles, report)
    return report


def _needles(canaries: Sequence[Canary], keyrings: Iterable[TenantKeys]) -> _Needles:
    clear: dict[str, tuple[str, str]] = {}
    for n, canary in enumerate(canaries, start=1):
        for name, form in canary_forms(canary).items():
            clear.setdefault(form, (name, f"{canary.kind} #{n}"))
    by_text = dict(clear)
    for keys in keyrings:
        for n, canary in enumerate(canaries, start=1):
            if canary.kind == "text":
                continue
            value = canary.value.lower() if canary.kind == "email" else canary.value
            for label in INDEX_LABELS:
                token = keys.blind_index(value, field=label)
                by_text[token] = (f"blind index ({label}, live key)", f"{canary.kind} #{n}")
    return _Needles(by_text, clear)


async def _live_keyrings(rt: Services,
                         accounts: Sequence[str] | None) -> dict[str, TenantKeys]:
    """Every keyring whose keys still exist (of ``accounts`` and the platform): read
    from the key store, so that scanning never makes keys for an account whose keys
    were destroyed."""
    async with rt.vault.keystore.connect() as conn:
        tenants = (await conn.scalars(select(tenant_keys_table.c.tenant_id))).all()
    wanted = None if accounts is None else {*accounts, PLATFORM_KEYRING}
    return {tenant: await rt.vault.keys_for(tenant) for tenant in tenants
            if wanted is None or tenant in wanted}


# --- the database, row by row -----------------------------------------------------------

async def _scan_database(rt: Services, needles: _Needles, keyrings: dict[str, TenantKeys],
                         report: ScanReport) -> None:
    for table in Base.metadata.sorted_tables:
        async for rows in _rows_of(rt, table):
            report.rows += len(rows)
            subject_ciphers = await _subject_ciphers(keyrings, table, rows)
            for row in rows:
                _check_row(table, row, needles, keyrings, subject_ciphers, report)


async def _rows_of(rt: Services, table: Table) -> Any:
    """The table's rows, a thousand at a time, in primary-key order."""
    order = list(table.primary_key.columns)
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        result = await session.stream(select(table).order_by(*order))
        async for rows in result.partitions(_CHUNK):
            yield [row._mapping for row in rows]


async def _subject_ciphers(keyrings: dict[str, TenantKeys], table: Table,
                           rows: Sequence[Any]) -> dict[str, FieldCipher | None]:
    """The person's key of each row that names one (messages), where it still lives."""
    if "subject_key" not in table.c:
        return {}
    by_tenant: dict[str, list[_Keyed]] = defaultdict(list)
    for row in rows:
        if row["subject_key"] is not None and row["tenant_id"] in keyrings:
            by_tenant[row["tenant_id"]].append(_Keyed(row["id"], row["subject_key"]))
    found: dict[str, FieldCipher | None] = {}
    for tenant, keyed in by_tenant.items():  # one key-store read a tenant, not a row
        found.update(await ciphers_of(keyrings[tenant], keyed))
    return found


@dataclass(frozen=True)
class _Keyed:
    id: str
    subject_key: str | None


def _check_row(table: Table, row: Any, needles: _Needles, keyrings: dict[str, TenantKeys],
               subject_ciphers: dict[str, FieldCipher | None], report: ScanReport) -> None:
    row_id = _row_id(table, row)
    for column, value in row.items():
        where = f"{table.name}.{column} {row_id}"
        if isinstance(value, bytes):
            if value:
                cipher = subject_ciphers.get(row.get("id")) if "subject_key" in row else None
                _check_ciphertext(table, column, value, row, where, needles, keyrings,
                                  cipher, report)
            continue
        if value is None:
            continue
        for form, canary in needles.in_text(str(value)):
            report.findings.append(Finding("database", where, form, canary))


def _row_id(table: Table, row: Any) -> str:
    return "/".join(str(row[c.name]) for c in table.primary_key.columns)


def _check_ciphertext(table: Table, column: str, blob: bytes, row: Any, where: str,
                      needles: _Needles, keyrings: dict[str, TenantKeys],
                      cipher: FieldCipher | None, report: ScanReport) -> None:
    label = _LABELS.get((table.name, column), f"{table.name}.{column.removesuffix('_enc')}")
    for candidate in _candidates(table, row, keyrings, cipher):
        try:
            plain = candidate.decrypt(blob, field=label)
        except VaultError:
            continue
        for form, canary in needles.in_clear(plain):
            report.findings.append(Finding("database", where, f"decrypts ({form})", canary))
        return


def _candidates(table: Table, row: Any, keyrings: dict[str, TenantKeys],
                cipher: FieldCipher | None) -> Iterator[FieldCipher]:
    """The keys to try, likeliest first: the person's, the row's account's (an
    account's own row is its ``id``), the platform's, then every other live one."""
    if cipher is not None:
        yield cipher
    own = row.get("tenant_id") if "tenant_id" in table.c else (
        row.get("id") if table.name == "accounts" else None)
    first = [k for k in (keyrings.get(own) if own else None, keyrings.get(PLATFORM_KEYRING))
             if k is not None]
    yield from first
    yield from (k for k in keyrings.values() if k not in first)


# --- files, byte by byte ----------------------------------------------------------------

def _database_files(rt: Services) -> list[Path]:
    """On SQLite, the database's files: what the rows no longer show may linger there."""
    url = make_url(rt.settings.resolved_database_url())
    if not url.drivername.startswith("sqlite") or not url.database:
        return []
    base = Path(url.database)
    return [p for p in (base, Path(f"{base}-wal"), Path(f"{base}-journal")) if p.exists()]


def _scan_path(path: Path, needles: _Needles, report: ScanReport) -> None:
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    encoded = {text.encode(): found for text, found in needles.by_text.items()}
    longest = max(len(n) for n in encoded)
    for file in files:
        report.files += 1
        tail, offset = b"", 0
        with file.open("rb") as handle:
            while chunk := handle.read(_FILE_CHUNK):
                window = tail + chunk
                for needle, (form, canary) in encoded.items():
                    at = window.find(needle, max(0, len(tail) - len(needle) + 1))
                    if at >= 0:  # ending in this chunk: one that the tail held was counted
                        report.findings.append(Finding(
                            "file", f"{file}@{offset - len(tail) + at}", form, canary))
                tail, offset = window[-longest:], offset + len(chunk)
                report.bytes += len(chunk)
