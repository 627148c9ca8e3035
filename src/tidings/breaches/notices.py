"""The mail of the breach register: the notice to each affected client (to its
owners), and the escalation and the page to the operator's staff.

A notice holds what the DPA and GDPR Art. 33(3) ask of it (the nature of the breach,
the categories and approximate numbers of people and records, the likely consequences,
the measures taken, the contact point), as the current version says it, and the
client's own accounts with the impact estimated for each. It holds nobody's personal
data: the register has none.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from tidings.breaches.clock import due_at
from tidings.breaches.impact import AccountImpact
from tidings.breaches.models import Breach, BreachVersion

if TYPE_CHECKING:
    pass

__all__ = ["client_notice", "escalation_mail", "page_mail"]

LISTED_ACCOUNTS = 100  # a client with more: the rest in one line (the mail's size is capped)
_NATURES = {
    "confidentiality": "confidentiality (personal data disclosed or accessed without "
                       "authority)",
    "integrity": "integrity (personal data altered without authority)",
    "availability": "availability (personal data lost, destroyed or out of reach)",
}


def _when(value: datetime | None) -> str:
    return "-" if value is None else value.strftime("%Y-%m-%d %H:%M UTC")


def _list(values: Sequence[str]) -> str:
    return ", ".join(values) if values else "-"


def client_notice(breach: Breach, version: BreachVersion, *, account_name: str,
                  controller_id: str, lines: Sequence[AccountImpact]) -> tuple[str, str]:
    """The subject and body of the notice to one client."""
    subject = f"Personal data breach notice {breach.id} (version {version.version})"
    approx = version.approx_subjects or "-"
    if version.approx_subjects == "unknown" and version.approx_subjects_reason:
        approx += f" ({version.approx_subjects_reason})"
    accounts = "\n".join(f"  {line.tenant_id}: about {line.subjects} people, "
                         f"{line.records} records" for line in lines[:LISTED_ACCOUNTS])
    if len(lines) > LISTED_ACCOUNTS:
        rest = lines[LISTED_ACCOUNTS:]
        accounts += (f"\n  and {len(rest)} more accounts: about "
                     f"{sum(line.subjects for line in rest)} people, "
                     f"{sum(line.records for line in rest)} records")
    accounts += (f"\n  in all: about {sum(line.subjects for line in lines)} people, "
                 f"{sum(line.records for line in lines)} records")
    body = (
        f"Tidings' operator, who processes personal data for your account "
        f"{account_name!r} ({controller_id}) as your processor, notifies you of a personal "
        "data breach concerning that data, as the data processing agreement requires "
        "within 48 hours of becoming aware of it (GDPR Art. 33(2)).\n\n"
        f"Breach: {breach.id}, version {version.version} of "
        f"{_when(version.created_at)}\n"
        f"Detected: {_when(breach.detected_at)}\n"
        f"The operator became aware: {_when(breach.aware_at)}\n\n"
        f"Nature of the breach: {_NATURES.get(version.nature or '', '-')}\n"
        f"{version.nature_description or '-'}\n\n"
        f"Categories of data subjects: {_list(version.categories_of_subjects)}\n"
        f"Approximate number of data subjects (all clients): {approx}\n"
        f"Categories of personal data records: {_list(version.categories_of_records)}\n"
        f"Approximate number of personal data records (all clients): "
        f"{version.approx_records or '-'}\n"
        f"Period concerned: {_when(version.scope_window_start)} to "
        f"{_when(version.scope_window_end)}\n\n"
        f"Your accounts concerned, as estimated from the platform's records:\n{accounts}\n\n"
        f"Likely consequences:\n{version.likely_consequences or '-'}\n\n"
        f"Measures taken or proposed:\n{version.measures_taken or '-'}\n\n"
        f"Contact point for more information:\n{version.contact or '-'}\n\n"
        "Further information will follow in updated notices as it becomes known.\n")
    return subject, body


def escalation_mail(breach: Breach) -> tuple[str, str]:
    subject = f"Breach {breach.id}: 12 hours left to notify the clients"
    body = (f"The breach {breach.id} is still not notified. The operator became aware of "
            f"it at {_when(breach.aware_at)}; the affected clients must be told by "
            f"{_when(due_at(breach.aware_at))}.\n\n"
            "Complete its record and notify: the console's Breaches page "
            f"(/operator/breaches/{breach.id}), POST /v1/operator/breaches/{breach.id}/"
            f"notify, or `tidings privacy breaches notify {breach.id}`.\n")
    return subject, body


def page_mail(breach: Breach) -> tuple[str, str]:
    subject = f"OVERDUE: breach {breach.id} not notified within 48 hours"
    body = (f"The breach {breach.id} was due to be notified to the affected clients by "
            f"{_when(due_at(breach.aware_at))} (48 hours after the operator became aware, "
            f"at {_when(breach.aware_at)}), and is not. Notify them now, and record why "
            f"it was late: /operator/breaches/{breach.id}.\n")
    return subject, body
