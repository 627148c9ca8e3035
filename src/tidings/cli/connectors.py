"""``tidings connectors``, ``tidings routes``, ``tidings operator-keys``: carrier set-up."""

from __future__ import annotations

from typing import Any

import click

from tidings.cli.common import emit, validated, with_runtime
from tidings.cli.secrets import secret_option
from tidings.operators.service import (
    do_create_operator_key,
    do_revoke_operator_key,
    list_operator_keys,
)
from tidings.routing.schemas import (
    AnyConnectorIn,
    ConnectorSubprocessorIn,
    RouteIn,
    SmppConnectorIn,
    SmtpConnectorIn,
    TargetIn,
    WhatsAppConnectorIn,
)
from tidings.routing.service import (
    OPERATOR_KEYRING,
    connector_out,
    do_create_connector,
    do_remove_connector,
    do_remove_route,
    do_set_subprocessor,
    list_connector_errors,
    list_connectors,
    list_routes,
    route_out,
    save_route,
)
from tidings.runtime import Runtime
from tidings.storage.db import SYSTEM


@click.group("connectors")
def connectors() -> None:
    """Carrier connections (SMPP binds to an SMSC, and more to come)."""


@connectors.group("add")
def add() -> None:
    """Add a connector; a running worker starts it within a few seconds."""


@add.command("smpp")
@click.option("--name", default=None, help="A name for routes to use [default: smpp-HOST].")
@click.option("--host", required=True)
@click.option("--port", type=int, default=2775, show_default=True)
@click.option("--system-id", required=True, help="The SMSC account (system_id).")
@secret_option("password", what="the bind password", help=", stored encrypted",
               required=False)
@click.option("--system-type", default="")
@click.option("--binds", type=int, default=1, show_default=True)
@click.option("--window", type=int, default=10, show_default=True,
              help="Submits in flight per bind.")
@click.option("--tps", type=float, default=None, help="Submits per second, whole connector.")
@click.option("--long-messages", type=click.Choice(["udh", "sar", "payload"]), default="udh",
              show_default=True, help="How messages longer than one SMS travel.")
@click.option("--gsm7-coding", type=click.Choice(["gsm7", "latin1"]), default="gsm7",
              show_default=True, help="data_coding for GSM-7 text: 0, or 3 (Latin-1).")
@click.option("--subprocessor", "subprocessor_id", default=None, metavar="SUB_ID",
              help="The company behind it, in the sub-processor register.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def add_smpp(name: str | None, as_json: bool, **options: Any) -> None:
    """An SMPP 3.4 connection to an SMSC (transceiver binds)."""
    _add(validated(SmppConnectorIn, {"name": name or _default_name("smpp", options["host"]),
                                      **options}), as_json)


@add.command("smtp")
@click.option("--name", default=None, help="A name for routes to use [default: smtp-HOST].")
@click.option("--host", required=True, help="The SMTP relay.")
@click.option("--port", type=int, default=587, show_default=True)
@click.option("--security", type=click.Choice(["none", "starttls", "tls"]),
              default="starttls", show_default=True)
@click.option("--username", default=None, help="AUTH user (AUTH only when given).")
@secret_option("password", what="the AUTH password", help=", stored encrypted",
               required=False, ask_if=lambda options: bool(options["username"]))
@click.option("--mail-domain", required=True, help="Right side of our Message-IDs.")
@click.option("--bounce-domain", default=None, help="Envelope sender domain for bounces.")
@click.option("--concurrency", type=int, default=4, show_default=True)
@click.option("--no-verify-tls", "verify_tls", is_flag=True, flag_value=False, default=True,
              help="Accept any relay certificate (testing only).")
@click.option("--listen-host", default="127.0.0.1", show_default=True)
@click.option("--listen-port", type=int, default=None,
              help="Run our SMTP listener here to take bounces.")
@click.option("--subprocessor", "subprocessor_id", default=None, metavar="SUB_ID",
              help="The company behind it, in the sub-processor register.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def add_smtp(name: str | None, as_json: bool, **options: Any) -> None:
    """An SMTP relay for the email channel."""
    _add(validated(SmtpConnectorIn, {"name": name or _default_name("smtp", options["host"]),
                                      **options}), as_json)


@add.command("whatsapp")
@click.option("--name", default="whatsapp", show_default=True)
@click.option("--phone-number-id", required=True, help="The Cloud API phone number id.")
@secret_option("access-token", what="the access token", help=", stored encrypted",
               required=True)
@secret_option("app-secret", what="the app secret", required=True,
               help=", which checks our webhooks' signatures")
@secret_option("verify-token", what="the verify token", required=True,
               help=", which answers the webhook handshake")
@click.option("--base-url", default="https://graph.facebook.com", show_default=True)
@click.option("--api-version", default="v21.0", show_default=True)
@click.option("--display-phone-number", default=None,
              help="The number as Meta shows it; accounts may be given it even if no "
                   "numbering plan knows it (Meta's +1 555 test numbers).")
@click.option("--subprocessor", "subprocessor_id", default=None, metavar="SUB_ID",
              help="The company behind it, in the sub-processor register.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def add_whatsapp(as_json: bool, **options: Any) -> None:
    """A WhatsApp Business number on the Cloud API; its webhook is
    /v1/whatsapp/NAME/webhook."""
    _add(validated(WhatsAppConnectorIn, options), as_json)


def _default_name(kind: str, host: str) -> str:
    return f"{kind}-{host}".replace(".", "-").lower()


def _add(body: AnyConnectorIn, as_json: bool) -> None:
    async def work(rt: Runtime) -> None:
        keys = await rt.vault.keys_for(OPERATOR_KEYRING)
        async with rt.db.transaction(tenant=SYSTEM) as session:
            row = await do_create_connector(session, keys=keys, body=body, now=rt.clock.now())
            out = connector_out(keys, row)
        emit(out.model_dump(mode="json"), as_json=as_json,
             text=f"connector {out.name} added ({out.kind})")
    with_runtime(work)


@connectors.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_(as_json: bool) -> None:
    """List connectors (secrets are never shown)."""
    async def work(rt: Runtime) -> None:
        keys = await rt.vault.keys_for(OPERATOR_KEYRING)
        async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
            rows = [connector_out(keys, r).model_dump(mode="json")
                    for r in await list_connectors(session)]
        emit(rows, as_json=as_json, text="\n".join(
            f"{r['name']}\t{r['kind']}\t{','.join(r['channels'])}" for r in rows) or "none")
    with_runtime(work)


@connectors.command("set-subprocessor")
@click.argument("name")
@click.option("--subprocessor", "subprocessor_id", default=None, metavar="SUB_ID",
              help="The company's entry in the sub-processor register.")
@click.option("--none", "own", is_flag=True, help="The operator's own: no sub-processor.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def set_subprocessor(name: str, subprocessor_id: str | None, own: bool, as_json: bool) -> None:
    """Name the company behind connector NAME: it carries an account's messages only
    once that sub-processor is in effect for the account."""
    if (subprocessor_id is None) == (not own):
        raise click.UsageError("Give exactly one of --subprocessor SUB_ID and --none.")
    body = validated(ConnectorSubprocessorIn, {"subprocessor_id": subprocessor_id})

    async def work(rt: Runtime) -> None:
        keys = await rt.vault.keys_for(OPERATOR_KEYRING)
        async with rt.db.transaction(tenant=SYSTEM) as session:
            row = await do_set_subprocessor(session, name=name,
                                            subprocessor_id=body.subprocessor_id,
                                            now=rt.clock.now())
            out = connector_out(keys, row)
        emit(out.model_dump(mode="json"), as_json=as_json,
             text=f"connector {name}: {out.subprocessor_id or 'no sub-processor'}")
    with_runtime(work)


@connectors.command("errors")
@click.argument("name")
@click.option("--limit", type=click.IntRange(1, 1000), default=100, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def errors(name: str, limit: int, as_json: bool) -> None:
    """Problems the carrier reported about connector NAME (rate limits...), newest first."""
    async def work(rt: Runtime) -> None:
        async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
            rows = [e.model_dump(mode="json")
                    for e in await list_connector_errors(session, name=name, limit=limit)]
        emit(rows, as_json=as_json, text="\n".join(
            f"{r['occurred_at']}\t{r['code']}\t{r['title']}" for r in rows) or "none")
    with_runtime(work)


@connectors.command("remove")
@click.argument("name")
def remove(name: str) -> None:
    """Remove a connector no route uses."""
    async def work(rt: Runtime) -> None:
        async with rt.db.transaction(tenant=SYSTEM) as session:
            await do_remove_connector(session, name=name)
        click.echo(f"connector {name} removed")
    with_runtime(work)


@click.group("routes")
def routes() -> None:
    """Routing rules: which connectors carry which messages."""


def _target(text: str) -> TargetIn:
    name, _, weight = text.partition(":")
    return validated(TargetIn, {"connector": name, "weight": weight or 1})


@routes.command("add")
@click.option("--channel", required=True, type=click.Choice(["sms", "email", "whatsapp"]))
@click.option("--connector", "targets", multiple=True, required=True,
              help="NAME or NAME:WEIGHT; repeat in failover order. Weight 0: backup only.")
@click.option("--priority", type=int, default=100, show_default=True,
              help="Lower wins; between equals the more specific rule wins.")
@click.option("--prefix", default=None, help="Destination prefix, e.g. +44.")
@click.option("--country", default=None, help="Destination country, e.g. GB.")
@click.option("--sender", default=None)
@click.option("--account", "account_id", default=None, help="Only this account's messages.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def add_route(targets: tuple[str, ...], as_json: bool, **options: Any) -> None:
    """Add a routing rule."""
    body = validated(RouteIn, {**options,
                                "connectors": [_target(t).model_dump() for t in targets]})

    async def work(rt: Runtime) -> None:
        async with rt.db.transaction(tenant=SYSTEM) as session:
            out = await save_route(session, body=body, now=rt.clock.now())
        emit(out.model_dump(mode="json"), as_json=as_json, text=f"route {out.id} added")
        if out.warning and not as_json:
            click.echo(f"warning: {out.warning}", err=True)
    with_runtime(work)


@routes.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_routes_(as_json: bool) -> None:
    """List routing rules."""
    async def work(rt: Runtime) -> None:
        async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
            rows = [route_out(r).model_dump(mode="json") for r in await list_routes(session)]
        emit(rows, as_json=as_json, text="\n".join(
            f"{r['id']}\t{r['channel']}\t{r['prefix'] or r['country'] or '*'}\t"
            + ",".join(f"{t['connector']}:{t['weight']}" for t in r["connectors"])
            for r in rows) or "none")
    with_runtime(work)


@routes.command("remove")
@click.argument("route_id")
def remove_route(route_id: str) -> None:
    """Remove a routing rule."""
    async def work(rt: Runtime) -> None:
        async with rt.db.transaction(tenant=SYSTEM) as session:
            await do_remove_route(session, route_id=route_id)
        click.echo(f"route {route_id} removed")
    with_runtime(work)


@click.group("operator-keys")
def operator_keys() -> None:
    """Keys for the operator API (/v1/operator/...)."""


@operator_keys.command("create")
@click.option("--name", default="default")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def create_operator_key(name: str, as_json: bool) -> None:
    """Create an operator key (shown once)."""
    async def work(rt: Runtime) -> None:
        async with rt.db.transaction(tenant=SYSTEM) as session:
            made = await do_create_operator_key(session, name=name, now=rt.clock.now())
        emit({"id": made.key.id, "key": made.secret}, as_json=as_json,
             text=f"{made.key.id}\n{made.secret}\n(the key is shown once)")
    with_runtime(work)


@operator_keys.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def list_operator_keys_(as_json: bool) -> None:
    """List operator keys."""
    async def work(rt: Runtime) -> None:
        async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
            rows = [{"id": k.id, "name": k.name, "created_at": k.created_at.isoformat(),
                     "revoked": k.revoked_at is not None}
                    for k in await list_operator_keys(session)]
        emit(rows, as_json=as_json, text="\n".join(
            f"{r['id']}\t{r['name']}\t{'revoked' if r['revoked'] else 'active'}"
            for r in rows) or "none")
    with_runtime(work)


@operator_keys.command("revoke")
@click.argument("key_id")
def revoke_operator_key(key_id: str) -> None:
    """Revoke an operator key."""
    async def work(rt: Runtime) -> None:
        async with rt.db.transaction(tenant=SYSTEM) as session:
            await do_revoke_operator_key(session, key_id=key_id, now=rt.clock.now())
        click.echo(f"operator key {key_id} revoked")
    with_runtime(work)
