"""Data subjects on the send path: each person's key, found without a read.

A person (a phone number or e-mail address within a tenant) is known by their blind
index, and every message about them records both their index and the id of the key its
personal fields are under: ``to_index`` for the recipient of an outbound message,
``from_index`` for the sender of an inbound one, and ``subject_key``. Those two columns
are how erasure finds every key of a person (``erasure.keys_of``); nothing else has to
be written to bind a key to a person.

A person's key is the one this process is using for them (the keyring's cache), or a
new one from the keyring's pool. The send path reads nothing to find it: a process that
meets someone it has no key at hand for (a new person, or one it has not seen since it
started or since its cache let them go) gives them a new key. So a person has a key per
such meeting, usually one, and erasing them destroys them all. Looking the old key up
instead costs every such send a database read: ``bench/cpu_per_send.py --callgrind``
(single sends, each to a new number) counted 5.0 M instructions a send with the read,
3.1 M without, 2.8 M before subject keys.
"""

from __future__ import annotations

from collections.abc import Sequence

from tidings.storage.ciphers import SubjectKey
from tidings.storage.vault import TenantKeys

__all__ = ["SUBJECT_INDEX_FIELD", "subject_index", "subjects_for"]

# The label of a data subject's blind index: that of the recipient column, so an outbound
# message's ``to_index`` is its subject's index and a send computes one HMAC, not two.
SUBJECT_INDEX_FIELD = "messages.to"


def subject_index(keys: TenantKeys, address: str) -> str:
    """A person's blind index: the same token whether the address is a message's
    recipient or its sender, and the ``to_index`` of the messages sent to them."""
    return keys.blind_index(address, field=SUBJECT_INDEX_FIELD)


async def subjects_for(keys: TenantKeys, addresses: Sequence[str]) -> list[SubjectKey]:
    """The key of each person at ``addresses`` (normalised): the one in use, or a new one.
    Call it before the storing transaction opens: a pool that ran dry is refilled from
    the key store, which no transaction should wait on."""
    ring = keys.subjects
    if ring is None:
        raise ValueError(f"the keys of {keys.tenant_id!r} have no subject keyring")
    if len(addresses) == 1:  # the single send: no list work
        index = subject_index(keys, addresses[0])
        key = ring.cached(index)
        return [key if key is not None else (await ring.fresh([index]))[0]]
    indexes = [subject_index(keys, address) for address in addresses]
    found = {index: key for index in indexes if (key := ring.cached(index)) is not None}
    new = [index for index in dict.fromkeys(indexes) if index not in found]
    if new:  # a batch to many new people: their keys in one key-store transaction
        found.update(zip(new, await ring.fresh(new), strict=True))
    return [found[index] for index in indexes]
