"""Whether a connector may carry an account's messages yet: its sub-processor in effect.

Routing (``routing/rules.py``) asks this for every connector of a message's plan that
names a sub-processor. The answer needs no database read per message: the gates are
loaded with the routing table (``load_gates``) and compare the clock with the times
they hold, so the thirty days end at their instant, not at the next cache refresh.
A gate refuses:

- a sub-processor only proposed (nobody told) or retired;
- any account before its effective time: the register's, or later for a client told
  later (its notice's own thirty days), and the accounts below that client with it;
- a client that objected, and the accounts below it, unless the objection was
  withdrawn.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.models import Account
from tidings.subprocessors.models import (
    Lifecycle,
    Resolution,
    Subprocessor,
    SubprocessorNotice,
)


@dataclass(frozen=True, slots=True)
class Gate:
    """One sub-processor as routing sees it."""

    subprocessor_id: str
    effective_at: datetime | None  # None: proposed or retired, in effect for nobody
    later: Mapping[str, datetime] = field(default_factory=dict)  # account → its own time
    kept_off: frozenset[str] = frozenset()  # accounts that objected, and those below

    def allows(self, account_id: str, now: datetime) -> bool:
        if self.effective_at is None or account_id in self.kept_off:
            return False
        return now >= self.later.get(account_id, self.effective_at)


def keeps_off(notice: SubprocessorNotice) -> bool:
    """Whether this client's objection keeps it off the sub-processor."""
    return notice.objected_at is not None and notice.resolution != Resolution.WITHDRAWN


async def load_gates(session: AsyncSession,
                     subprocessor_of: Mapping[str, str]) -> dict[str, Gate]:
    """The gate of each connector in ``subprocessor_of`` (connector → sub-processor id);
    one read of the register, one of the notices that differ from it, one of accounts
    when there are some (a session that sees every tenant: ``SYSTEM``)."""
    if not subprocessor_of:
        return {}
    wanted = set(subprocessor_of.values())
    entries = {row.id: row for row in await session.scalars(
        select(Subprocessor).where(Subprocessor.id.in_(wanted)))}
    notices = list(await session.scalars(select(SubprocessorNotice).where(
        SubprocessorNotice.subprocessor_id.in_(wanted))))
    special = [n for n in notices if keeps_off(n) or _told_late(n, entries)]
    below = await _subtrees(session, {n.tenant_id for n in special}) if special else {}
    gates = {sub_id: _gate(entries.get(sub_id), sub_id,
                           [n for n in special if n.subprocessor_id == sub_id], below)
             for sub_id in wanted}
    return {connector: gates[sub_id] for connector, sub_id in subprocessor_of.items()}


def _told_late(notice: SubprocessorNotice, entries: Mapping[str, Subprocessor]) -> bool:
    entry = entries.get(notice.subprocessor_id)
    return (entry is not None and entry.effective_at is not None
            and notice.effective_at > entry.effective_at)


def _gate(entry: Subprocessor | None, sub_id: str, notices: Iterable[SubprocessorNotice],
          below: Mapping[str, frozenset[str]]) -> Gate:
    if entry is None or entry.lifecycle != Lifecycle.NOTIFIED or entry.effective_at is None:
        return Gate(sub_id, None)
    later: dict[str, datetime] = {}
    kept_off: set[str] = set()
    for notice in notices:
        accounts = below.get(notice.tenant_id, frozenset({notice.tenant_id}))
        if keeps_off(notice):
            kept_off |= accounts
        else:
            later.update(dict.fromkeys(accounts, notice.effective_at))
    return Gate(sub_id, entry.effective_at, later, frozenset(kept_off))


async def _subtrees(session: AsyncSession, roots: set[str]) -> dict[str, frozenset[str]]:
    """Each root with every account below it (sub-accounts nest)."""
    found: dict[str, frozenset[str]] = {}
    for root in roots:
        tree, level = {root}, {root}
        while level:
            level = set((await session.scalars(
                select(Account.id).where(Account.parent_id.in_(level)))).all()) - tree
            tree |= level
        found[root] = frozenset(tree)
    return found
