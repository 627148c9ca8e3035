"""``tidings mail`` (the local mailbox) and ``tidings notices`` (notices to clients' owners)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import click

from tidings.cli.common import emit, fail, operator_actor, with_runtime

if TYPE_CHECKING:
    from tidings.core.settings import Settings
    from tidings.mail.mailbox import KeptMail
    from tidings.runtime import Runtime


@click.group("mail")
def mail() -> None:
    """The platform's own mail: the local mailbox."""


@mail.command("list")
@click.option("--to", "to", default=None, help="Only the mails to this address.")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True,
              help="At most this many, the newest.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON, each mail in full.")
def list_command(to: str | None, limit: int, as_json: bool) -> None:
    """List the mails in the mailbox, newest first: kept there because no relay is set
    (TIDINGS_PLATFORM_MAIL_RELAY), or failed for good (with the relay's error)."""
    from tidings.core.settings import Settings

    found = _newest(asyncio.run(_read_mailbox(Settings())), to=to, limit=limit)
    emit([m.as_json() for m in found], as_json=as_json,
         text="\n".join(_line(m) for m in found) or "no mail")


async def _read_mailbox(settings: Settings) -> list[KeptMail]:
    from tidings.mail.mailbox import Mailbox, mailbox_path
    from tidings.storage.vault import MASTER_KEY_FILE, Vault, VaultError

    mailbox = Mailbox(mailbox_path(settings.data_dir))
    if not mailbox.path.is_file():
        return []
    key_file = settings.resolved_key_dir() / MASTER_KEY_FILE
    if not settings.master_key and not key_file.is_file():
        fail(f"no master key at {key_file}: run this with the server's TIDINGS_KEY_DIR "
             "(or TIDINGS_MASTER_KEY) and TIDINGS_KEYSTORE_URL")
    vault = await Vault.open(settings)
    try:
        return mailbox.read(await vault.platform_keys())
    except VaultError:
        fail(f"{mailbox.path} was sealed with other keys than these: run this with the "
             "server's TIDINGS_KEY_DIR (or TIDINGS_MASTER_KEY) and TIDINGS_KEYSTORE_URL")
    finally:
        await vault.close()


def _newest(mails: list[KeptMail], *, to: str | None, limit: int) -> list[KeptMail]:
    wanted = to.strip().lower() if to is not None else None
    chosen = [m for m in mails if wanted is None or m.to.lower() == wanted]
    return sorted(chosen, key=lambda m: m.at, reverse=True)[:limit]


def _line(mail: KeptMail) -> str:
    status = mail.status if mail.error is None else f"{mail.status} ({mail.error})"
    return (f"{mail.at:%Y-%m-%d %H:%M:%S}  {mail.to or '-'}  {mail.subject!r}  "
            f"{mail.kind}  {status}")


@click.group("notices")
def notices() -> None:
    """Notices (maintenance, say) to the owners of clients' accounts."""


@notices.command("send")
@click.option("--all", "everyone", is_flag=True,
              help="To the owners of every active and trial account.")
@click.option("--account", "account_id", default=None, help="To the owners of this account.")
@click.option("--subject", required=True, help="One line.")
@click.option("--body", required=True, help="The text of the notice.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def send(everyone: bool, account_id: str | None, subject: str, body: str,
         as_json: bool) -> None:
    """Queue a maintenance notice to the owners of one account (--account) or of all
    (--all); the running server sends them. Prints how many were queued."""
    from tidings.mail.notices import send_notice

    async def work(rt: Runtime) -> None:
        sent = await send_notice(rt, account_id=account_id, everyone=everyone,
                                 subject=subject, body=body, actor=operator_actor())
        emit({"queued": sent.queued, "accounts": sent.accounts, "mail_ids": sent.mail_ids},
             as_json=as_json,
             text=f"queued {sent.queued} notice(s) to the owners of {sent.accounts} "
                  "account(s)")
    with_runtime(work)
