"""Unwrapped keys at work: field encryption (AES-256-GCM) and blind indexes (HMAC-SHA256).

Two kinds of key encrypt fields:

* a tenant's **data key** (``TenantKeys``) for what belongs to the account itself
  (its numbers, its secrets, its users' details);
* a **subject key** (``SubjectKey``) per data subject, the person at a phone number or
  e-mail address within a tenant, for what is about that person (the messages to and
  from them). Destroying it erases that one person and nobody else.

Field ciphertext is ``version (1 byte) || nonce (12 bytes) || ciphertext + tag``. The
version byte says which kind of key wrote it (1: tenant, 2: subject). The GCM associated
data binds the version, the tenant, the column and, for a subject key, the key's id, so a
value copied to another tenant, column or subject fails to decrypt.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import TYPE_CHECKING

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

if TYPE_CHECKING:
    from tidings.storage.subject_keys import SubjectKeyring

__all__ = ["KEY_BYTES", "FieldCipher", "SubjectKey", "TenantKeys", "VaultError", "unwrap",
           "wrap"]

KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16
TENANT_FORMAT = 1
SUBJECT_FORMAT = 2
_HEADER_BYTES = 1 + NONCE_BYTES


class VaultError(Exception):
    """Data or keys cannot be decrypted, or the key material is unusable."""


def length_prefixed(*parts: str) -> bytes:
    """Parts joined so that no two different lists give the same bytes."""
    out = b""
    for part in parts:
        raw = part.encode()
        out += len(raw).to_bytes(4, "big") + raw
    return out


def wrap(kek: AESGCM, key: bytes, aad: bytes) -> bytes:
    """A key wrapped by the key above it: nonce || AES-GCM(kek, key, aad)."""
    nonce = os.urandom(NONCE_BYTES)
    return nonce + kek.encrypt(nonce, key, aad)


def unwrap(kek: AESGCM, wrapped: bytes, aad: bytes, *, what: str) -> bytes:
    """The key ``wrap`` wrapped; ``VaultError`` naming ``what`` if it will not unwrap."""
    try:
        return kek.decrypt(wrapped[:NONCE_BYTES], wrapped[NONCE_BYTES:], aad)
    except (InvalidTag, ValueError):
        raise VaultError(f"cannot unwrap {what}: wrong key, or the key store was "
                         "tampered with") from None


class FieldCipher:
    """AES-256-GCM for columns, with associated data built once per column.

    ``encrypt``/``decrypt`` only draw a nonce and run AES-GCM: a few microseconds for a
    short field, cheap enough for the hot path.
    """

    __slots__ = ("_aad_cache", "_aad_prefix", "_data_aead", "_version", "tenant_id")

    def __init__(self, tenant_id: str, data_key: bytes, *, version: int,
                 aad_prefix: bytes) -> None:
        if len(data_key) != KEY_BYTES:
            raise VaultError("data keys must be 32 bytes")
        self.tenant_id = tenant_id
        self._version = version
        self._aad_prefix = aad_prefix
        self._data_aead: AESGCM | None = AESGCM(data_key)
        self._aad_cache: dict[str, bytes] = {}

    def encrypt(self, plaintext: str, *, field: str) -> bytes:
        """Encrypt ``plaintext`` for column ``field``; a fresh random nonce every call."""
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._aead().encrypt(nonce, plaintext.encode(), self._aad(field))
        return bytes((self._version,)) + nonce + sealed

    def decrypt(self, blob: bytes, *, field: str) -> str:
        """Decrypt a value from ``encrypt``; ``VaultError`` if tampered or misplaced."""
        if len(blob) < _HEADER_BYTES + TAG_BYTES or blob[0] != self._version:
            raise VaultError(f"not a ciphertext of this key (field {field!r})")
        try:
            plaintext = self._aead().decrypt(
                blob[1:_HEADER_BYTES], blob[_HEADER_BYTES:], self._aad(field))
        except InvalidTag:
            # Deliberately vague: tampering, wrong tenant and wrong field look alike.
            raise VaultError(
                f"cannot decrypt field {field!r} for tenant {self.tenant_id!r}: "
                "tampered, or written for another tenant, field or subject"
            ) from None
        return plaintext.decode()

    def encrypt_optional(self, plaintext: str | None, *, field: str) -> bytes | None:
        """``encrypt``, passing ``None`` through (nullable columns)."""
        return None if plaintext is None else self.encrypt(plaintext, field=field)

    def decrypt_optional(self, blob: bytes | None, *, field: str) -> str | None:
        """``decrypt``, passing ``None`` through (nullable columns)."""
        return None if blob is None else self.decrypt(blob, field=field)

    def _aead(self) -> AESGCM:
        aead = self._data_aead
        if aead is None:
            raise self._destroyed()
        return aead

    def _destroyed(self) -> VaultError:
        return VaultError(f"the keys of tenant {self.tenant_id!r} were destroyed")

    def _aad(self, field: str) -> bytes:
        # Few distinct fields exist, so building the AAD once per field keeps it off
        # the hot path.
        aad = self._aad_cache.get(field)
        if aad is None:
            aad = self._aad_prefix + field.encode()
            self._aad_cache[field] = aad
        return aad

    def _revoke(self) -> None:
        """Make this object unusable: callers holding it must not outlive erasure."""
        self._data_aead = None


class TenantKeys(FieldCipher):
    """One tenant's unwrapped data key and blind-index key."""

    __slots__ = ("_index_mac", "key_version", "subjects")

    def __init__(self, tenant_id: str, data_key: bytes, index_key: bytes, *,
                 key_version: int = 1, subjects: SubjectKeyring | None = None) -> None:
        if len(index_key) != KEY_BYTES:
            raise VaultError("tenant keys must be 32 bytes each")
        tenant = tenant_id.encode()
        super().__init__(tenant_id, data_key, version=TENANT_FORMAT, aad_prefix=(
            b"tidings-field:v1:" + len(tenant).to_bytes(4, "big") + tenant))
        self.key_version = key_version
        # The HMAC key schedule is computed once; each index call copies the state.
        self._index_mac: hmac.HMAC | None = hmac.new(index_key, digestmod=hashlib.sha256)
        # The tenant's data subjects' keys (``None`` for keyrings that have no subjects,
        # such as the platform's, or keys built by hand in a test).
        self.subjects = subjects

    def __repr__(self) -> str:
        return f"TenantKeys(tenant_id={self.tenant_id!r}, key_version={self.key_version})"

    def blind_index(self, value: str, *, field: str) -> str:
        """Deterministic search token: hex HMAC-SHA256(index key, field NUL value).

        Equal values in the same tenant and field give equal tokens, so equality
        look-ups work without decrypting; other tenants and fields get unrelated ones.
        """
        return self.fingerprint(value.encode(), purpose=field)

    def fingerprint(self, data: bytes, *, purpose: str) -> str:
        """Hex HMAC-SHA256(index key, purpose NUL data): a keyed digest of ``data``.

        What a check needs to recognise a value again (an idempotent request) without
        storing anything a copy of the database could be matched against: without
        the tenant's key the digest cannot be recomputed, and after crypto-erasure
        not even with every other key. ``purpose`` keeps it apart from blind indexes.
        """
        base = self._index_mac
        if base is None:
            raise self._destroyed()
        mac = base.copy()
        mac.update(purpose.encode() + b"\x00" + data)
        return mac.hexdigest()

    def _revoke(self) -> None:
        super()._revoke()
        self._index_mac = None


class SubjectKey(FieldCipher):
    """The key of one data subject in one tenant: ``key_id`` names it in the rows it
    encrypted (random, so it says nothing about the subject); ``index`` is the subject's
    blind index under the tenant's index key, by which a send finds it ("" until known)."""

    __slots__ = ("index", "key_id")

    def __init__(self, tenant_id: str, key_id: str, index: str, data_key: bytes) -> None:
        super().__init__(tenant_id, data_key, version=SUBJECT_FORMAT,
                         aad_prefix=b"tidings-subject-field:v2:"
                         + length_prefixed(tenant_id, key_id))
        self.key_id = key_id
        self.index = index

    def __repr__(self) -> str:
        return f"SubjectKey(tenant_id={self.tenant_id!r}, key_id={self.key_id!r})"

    def _destroyed(self) -> VaultError:
        return VaultError(f"the key of subject {self.key_id!r} was destroyed (erased)")
