"""Connectors and routes the operator configures. Services flush, never commit."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from tidings.accounts.models import Account
from tidings.connectors.sandbox.carrier import SANDBOX_CHANNELS, SANDBOX_NAME
from tidings.core.ids import new_id
from tidings.routing.models import ConnectorConfig, ConnectorError, RouteRule
from tidings.routing.rules import Route, RouteTarget, RoutingTable
from tidings.routing.schemas import (
    AnyConnectorIn,
    ConnectorErrorOut,
    ConnectorOut,
    RouteIn,
    RouteOut,
    RouteSaved,
    TargetIn,
    split_secrets,
)
from tidings.storage.vault import TenantKeys
from tidings.subprocessors.gates import load_gates
from tidings.subprocessors.models import Lifecycle, Subprocessor
from tidings.web.errors import Conflict, InvalidRequest, NotFound

# Connector secrets are encrypted under the vault's keys of this pseudo-tenant, so
# they live apart from the database like every other key.
OPERATOR_KEYRING = "operator"
SECRETS_FIELD = "connectors.secrets"
# The newest errors kept per connector: enough to see what is going on, bounded when a
# carrier repeats a notice for every message.
KEPT_CONNECTOR_ERRORS = 1000
# Connectors every process runs without a row in ``connectors``: routes may name them.
BUILT_IN_CHANNELS: dict[str, frozenset[str]] = {SANDBOX_NAME: SANDBOX_CHANNELS}


async def do_create_connector(session: AsyncSession, *, keys: TenantKeys,
                              body: AnyConnectorIn,
                              now: datetime) -> ConnectorConfig:
    if body.name in BUILT_IN_CHANNELS or await _connector_named(session, body.name) is not None:
        raise Conflict(f"A connector named {body.name!r} exists.", code="connector_exists")
    settings, secrets = split_secrets(body)
    row = ConnectorConfig(id=new_id("con"), name=body.name, kind=body.kind,
                          channels=list(body.channels), settings=settings,
                          secrets_enc=keys.encrypt(json.dumps(secrets), field=SECRETS_FIELD),
                          subprocessor_id=await _subprocessor(session, body.subprocessor_id),
                          enabled=True, created_at=now, updated_at=now)
    session.add(row)
    await session.flush()
    return row


async def do_set_subprocessor(session: AsyncSession, *, name: str, subprocessor_id: str | None,
                              now: datetime) -> ConnectorConfig:
    """Name the company behind a connector (None: the operator's own): from then on
    routing gives it an account's messages only once that company is in effect for the
    account (``subprocessors/gates.py``)."""
    row = await get_connector(session, name=name)
    row.subprocessor_id = await _subprocessor(session, subprocessor_id)
    row.updated_at = now
    await session.flush()
    return row


async def _subprocessor(session: AsyncSession, subprocessor_id: str | None) -> str | None:
    if subprocessor_id is None:
        return None
    entry = await session.get(Subprocessor, subprocessor_id)
    if entry is None:
        raise InvalidRequest(f"No sub-processor {subprocessor_id!r} in the register.",
                             code="unknown_subprocessor", parameter="subprocessor_id")
    if entry.lifecycle == Lifecycle.RETIRED:
        raise Conflict(f"{subprocessor_id} is retired: a connector cannot use it.",
                       code="subprocessor_retired")
    return entry.id


async def list_connectors(session: AsyncSession) -> list[ConnectorConfig]:
    rows = await session.scalars(select(ConnectorConfig).order_by(ConnectorConfig.created_at))
    return list(rows.all())


async def whatsapp_numbers(session: AsyncSession) -> set[str]:
    """The display numbers (``+<digits>``) of the WhatsApp connectors: the business
    numbers whose phone-number ids they serve, whatever libphonenumber thinks of them."""
    rows = await session.scalars(select(ConnectorConfig.settings)
                                 .where(ConnectorConfig.kind == "whatsapp"))
    return {str(s["display_phone_number"]) for s in rows if s.get("display_phone_number")}


async def get_connector(session: AsyncSession, *, name: str) -> ConnectorConfig:
    row = await _connector_named(session, name)
    if row is None:
        raise NotFound(f"No connector named {name!r}.", code="connector_not_found")
    return row


async def do_remove_connector(session: AsyncSession, *, name: str) -> None:
    row = await get_connector(session, name=name)
    users = [r.id for r in await list_routes(session)
             if any(t["connector"] == name for t in r.targets)]
    if users:
        raise Conflict(f"Routes {', '.join(users)} use connector {name!r}; remove them first.",
                       code="connector_in_use")
    await session.execute(delete(ConnectorError).where(ConnectorError.connector == name))
    await session.delete(row)


async def do_record_connector_errors(session: AsyncSession, *, connector: str,
                                     errors: Sequence[tuple[int, str]],
                                     now: datetime) -> None:
    """Store (code, title) pairs the carrier reported about ``connector``; only the
    newest ``KEPT_CONNECTOR_ERRORS`` stay."""
    session.add_all(ConnectorError(id=new_id("cer"), connector=connector, code=code,
                                   title=title, occurred_at=now) for code, title in errors)
    await session.flush()
    newest = (select(ConnectorError.id).where(ConnectorError.connector == connector)
              .order_by(ConnectorError.id.desc()).limit(KEPT_CONNECTOR_ERRORS))
    await session.execute(delete(ConnectorError).where(
        ConnectorError.connector == connector, ConnectorError.id.not_in(newest)))


async def list_connector_errors(session: AsyncSession, *, name: str,
                                limit: int) -> list[ConnectorErrorOut]:
    """The connector's newest errors first; 404 for a connector that does not exist."""
    await get_connector(session, name=name)
    rows = await session.scalars(select(ConnectorError)
                                 .where(ConnectorError.connector == name)
                                 .order_by(ConnectorError.id.desc()).limit(limit))
    return [ConnectorErrorOut(code=r.code, title=r.title, occurred_at=r.occurred_at)
            for r in rows]


def connector_secrets(keys: TenantKeys, row: ConnectorConfig) -> dict[str, Any]:
    secrets: dict[str, Any] = json.loads(keys.decrypt(row.secrets_enc, field=SECRETS_FIELD))
    return secrets


def connector_out(keys: TenantKeys, row: ConnectorConfig) -> ConnectorOut:
    """The operator's view: settings, and the names (never the values) of the secrets."""
    return ConnectorOut(id=row.id, name=row.name, kind=row.kind, channels=row.channels,
                        settings=row.settings, secrets=sorted(connector_secrets(keys, row)),
                        enabled=row.enabled, subprocessor_id=row.subprocessor_id,
                        created_at=row.created_at,
                        updated_at=row.updated_at)


async def do_create_route(session: AsyncSession, *, body: RouteIn, now: datetime) -> RouteRule:
    known = {**BUILT_IN_CHANNELS,
             **{c.name: frozenset(c.channels) for c in await list_connectors(session)}}
    for target in body.connectors:
        channels = known.get(target.connector)
        if channels is None:
            raise InvalidRequest(f"No connector named {target.connector!r}.",
                                 code="unknown_connector")
        if body.channel not in channels:
            raise InvalidRequest(f"Connector {target.connector!r} does not carry "
                                 f"{body.channel!r}.", code="connector_channel_mismatch")
    if body.account_id and await session.get(Account, body.account_id) is None:
        raise InvalidRequest(f"No account {body.account_id!r}.", code="unknown_account")
    row = RouteRule(id=new_id("rte"), priority=body.priority, channel=body.channel,
                    prefix=body.prefix, country=body.country, sender=body.sender,
                    account_id=body.account_id,
                    targets=[t.model_dump() for t in body.connectors], created_at=now)
    session.add(row)
    await session.flush()
    return row


async def save_route(session: AsyncSession, *, body: RouteIn, now: datetime) -> RouteSaved:
    """Create the route; the answer says what the channel's routes leave uncovered."""
    row = await do_create_route(session, body=body, now=now)
    warning = uncovered(await list_routes(session), body.channel)
    return RouteSaved(**route_out(row).model_dump(), warning=warning)


async def list_routes(session: AsyncSession) -> list[RouteRule]:
    rows = await session.scalars(select(RouteRule).order_by(RouteRule.priority,
                                                            RouteRule.created_at))
    return list(rows.all())


async def do_remove_route(session: AsyncSession, *, route_id: str) -> None:
    row = await session.get(RouteRule, route_id)
    if row is None:
        raise NotFound(f"No route {route_id!r}.", code="route_not_found")
    await session.delete(row)


def uncovered(routes: Sequence[RouteRule], channel: str) -> str | None:
    """What a channel's routes leave without a connector, said plainly; None when a
    route takes every message of the channel (no prefix, country, sender or account)."""
    mine = [r for r in routes if r.channel == channel]
    if not mine or any(r.prefix is None and r.country is None and r.sender is None
                       and r.account_id is None for r in mine):
        return None
    return (f"No route takes every {channel} message: a {channel} message that none of "
            f"the {len(mine)} {channel} route(s) matches is rejected with no_route. Add a "
            f"route without --prefix, --country, --sender or --account to catch the rest "
            f"(e.g. --connector {SANDBOX_NAME} while testing).")


def route_out(row: RouteRule) -> RouteOut:
    return RouteOut(id=row.id, channel=row.channel, priority=row.priority, prefix=row.prefix,
                    country=row.country, sender=row.sender, account_id=row.account_id,
                    connectors=[TargetIn(**t) for t in row.targets],
                    created_at=row.created_at)


async def load_routing_table(session: AsyncSession) -> RoutingTable:
    """The rules, and the gates of the connectors that name a sub-processor (a session
    that sees every tenant: the objections are the clients')."""
    behind = {name: sub_id for name, sub_id in (await session.execute(
        select(ConnectorConfig.name, ConnectorConfig.subprocessor_id))).all() if sub_id}
    return RoutingTable(
        (Route(id=r.id, channel=r.channel, priority=r.priority, prefix=r.prefix,
               country=r.country, sender=r.sender, account_id=r.account_id,
               targets=tuple(RouteTarget(t["connector"], int(t["weight"]))
                             for t in r.targets))
         for r in await list_routes(session)),
        await load_gates(session, behind))


async def _connector_named(session: AsyncSession, name: str) -> ConnectorConfig | None:
    found: ConnectorConfig | None = await session.scalar(
        select(ConnectorConfig).where(ConnectorConfig.name == name))
    return found
