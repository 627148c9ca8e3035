"""Entry point: ``tidings serve``, ``tidings accounts …``, ``tidings send …``.

Only ``click`` is imported up front: each command imports what it needs when it runs
(see ``lazy.py``), so that ``tidings --help`` and light commands start quickly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from tidings.cli.lazy import LazyGroup

if TYPE_CHECKING:
    from pydantic_core import ValidationError

COMMANDS = {  # name: (where it lives, its short help as the command says it)
    "accounts": ("tidings.cli.accounts:accounts", "Create and list client accounts."),
    "audit": ("tidings.cli.audit:audit", "Inspect the audit trail."),
    "consents": ("tidings.cli.consents:consents",
                 "Consent records: record, show and import people's consent to be messaged."),
    "connectors": ("tidings.cli.connectors:connectors",
                   "Carrier connections (SMPP binds to an SMSC, and more to come)."),
    "keys": ("tidings.cli.accounts:keys",
             "Create and revoke API keys; rotate the key store's key-encryption keys."),
    "mail": ("tidings.cli.mail:mail", "The platform's own mail: the local mailbox."),
    "migrate": ("tidings.cli.serve:migrate",
                "Bring the database schema up to date (serve does this too)."),
    "notices": ("tidings.cli.mail:notices",
                "Notices (maintenance, say) to the owners of clients' accounts."),
    "numbers": ("tidings.cli.numbers:numbers",
                "Assign numbers and email addresses to accounts."),
    "operator-keys": ("tidings.cli.connectors:operator_keys",
                      "Keys for the operator API (/v1/operator/...)."),
    "policies": ("tidings.cli.policies:policies",
                 "Policy versions: publish a change, clients notified, their objections."),
    "privacy": ("tidings.cli.privacy:privacy",
                "Data protection: requests, holds, retention, purges, breaches, "
                "sub-processors, ROPA, scan."),
    "routes": ("tidings.cli.connectors:routes",
               "Routing rules: which connectors carry which messages."),
    "sandbox": ("tidings.cli.sandbox:sandbox", "Simulate carrier traffic."),
    "serve": ("tidings.cli.serve:serve",
              "Run the API, the workers and the sandbox carrier in one process."),
    "send": ("tidings.cli.send:send",
             "Send BODY to every row of the CSV, with a progress bar."),
    "smpp-credentials": ("tidings.cli.smpp_credentials:smpp_credentials",
                         "Credentials clients bind with to Tidings' SMPP server "
                         "(TIDINGS_SMPP_PORT)."),
    "smsc-sim": ("tidings.cli.smsc_sim:smsc_sim",
                 "Run an SMPP 3.4 SMSC simulator for development, tests and benchmarks."),
    "stats": ("tidings.cli.stats:stats",
              "Traffic statistics: de-identified counts, never fewer than k people."),
    "users": ("tidings.cli.users:users", "People who log in to an account, with a role."),
    "webhooks": ("tidings.cli.webhooks:webhooks", "Receive webhooks while you develop."),
    "worker": ("tidings.cli.worker:worker",
               "Run the outbox workers and the carrier connectors, without the HTTP API."),
}


@click.group(cls=LazyGroup, lazy=COMMANDS)
@click.version_option(package_name="tidings")
def cli() -> None:
    """Tidings: messaging for your clients, from one command."""


def main() -> None:
    from pydantic_core import ValidationError

    try:
        cli()
    except ValidationError as exc:
        if exc.title != "Settings":
            raise
        _report_bad_settings(exc)
        raise SystemExit(2) from None


def _report_bad_settings(exc: ValidationError) -> None:
    """One line per bad ``TIDINGS_*`` variable, without its value (it may be a secret)."""
    for error in exc.errors():
        name = "TIDINGS_" + "_".join(str(part) for part in error["loc"]).upper()
        click.echo(f"Error: {name}: {error['msg']}", err=True)
