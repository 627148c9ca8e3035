"""What the statistics take from a person, and nothing more: the country of their
number, and a token that tells two people apart for the length of one build.

A token (``Tokens``) is a 64-bit keyed digest of the address under a key drawn at
random for each build and never stored, so no token outlives the build or matches
anything outside it. It is taken of the address in a canonical form (an e-mail address
case-folded, a number's digits only) so that one person is one token in every account:
two accounts' messages to one number count as one person. Two people whose tokens
collide count as one: the count can only come out lower, never higher.

The addresses are decrypted with the account's keys, as retention does, but a person's
key is read from the key store here without entering the account's key cache
(``SubjectKeyring.by_ids`` would): a build meets a whole day's people, and pushing the
send path's keys out of the cache would make it take new keys for people it knows.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import secrets
from collections.abc import Iterable, Sequence
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import select

from tidings.privacy.retention import describe
from tidings.storage.ciphers import FieldCipher, SubjectKey, TenantKeys, VaultError, unwrap
from tidings.storage.keystore import subject_keys_table
from tidings.storage.subject_keys import subject_key_aad
from tidings.storage.vault import Vault

__all__ = ["Tokens", "country_of", "subject_ciphers"]

_KEYS_A_STATEMENT = 500  # under every database's parameter limit
_ALPHA_2 = re.compile(r"[A-Z]{2}")
_NOT_A_COUNTRY = frozenset({"ZZ"})  # phonenumbers' "unknown region"
_NOT_DIGITS = re.compile(r"\D")


def country_of(address: str | None) -> str | None:
    """The ISO 3166-1 alpha-2 region of a number; None for an e-mail address, a number
    of no single country (``+800``, satellite: phonenumbers' ``001``) or garbage."""
    region, _kind = describe(address)
    return clean_country(region)


def clean_country(region: str | None) -> str | None:
    """``region`` if it is a country's two letters, else None."""
    if region is None or not _ALPHA_2.fullmatch(region) or region in _NOT_A_COUNTRY:
        return None
    return region


class Tokens:
    """Tokens of people for one build; a new instance, a new random key."""

    def __init__(self) -> None:
        self._key = secrets.token_bytes(32)

    def of(self, address: str) -> int:
        canonical = address.strip().casefold() if "@" in address else _NOT_DIGITS.sub(
            "", address)
        digest = hashlib.blake2b(canonical.encode(), key=self._key, digest_size=8).digest()
        return int.from_bytes(digest, "big")


async def subject_ciphers(vault: Vault, keys: TenantKeys,
                          key_ids: Iterable[str]) -> dict[str, FieldCipher]:
    """The keys named, unwrapped (on a thread), by id; an erased person's key is absent.
    Kept by no cache: the caller drops them with the chunk they decrypt."""
    wanted = sorted(set(key_ids))
    table = subject_keys_table
    rows: list[Any] = []
    async with vault.keystore.connect() as conn:
        for start in range(0, len(wanted), _KEYS_A_STATEMENT):
            rows += (await conn.execute(select(
                table.c.key_id, table.c.kek_version, table.c.wrapped_key,
            ).where(table.c.tenant_id == keys.tenant_id,
                    table.c.key_id.in_(wanted[start:start + _KEYS_A_STATEMENT])))).all()
    keks: dict[int, AESGCM] = {}
    for version in {row.kek_version for row in rows}:
        with contextlib.suppress(VaultError):  # destroyed: its account's keys are going
            keks[version] = await vault.kek(keys.tenant_id, version)
    return await asyncio.to_thread(_unwrapped, keys.tenant_id, rows, keks)


def _unwrapped(tenant: str, rows: Sequence[Any],
               keks: dict[int, AESGCM]) -> dict[str, FieldCipher]:
    found: dict[str, FieldCipher] = {}
    for key_id, version, wrapped in rows:
        kek = keks.get(version)
        if kek is None:
            continue
        try:
            data_key = unwrap(kek, bytes(wrapped), subject_key_aad(tenant, key_id),
                              what=f"the key of subject {key_id!r}")
        except VaultError:
            continue  # as good as erased
        found[key_id] = SubjectKey(tenant, key_id, "", data_key)
    return found
