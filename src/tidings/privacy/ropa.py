"""The record of processing activities for an account (ROPA-1, GDPR Art. 30), made
from the code's own declarations, so that it says what Tidings does and nothing else:

- the data map from every model column's data category and retention rule
  (``core/data_categories.py``): each personal category, where it is stored, how long
  and on what basis, with the account's own message retention filled in;
- the purposes and the data subjects' rights, as the access bundle states them;
- the recipients: the carriers (connectors) configured on the platform, and the
  sub-processors of the register with their countries and transfer safeguards, as they
  stand for this account (in effect, upcoming, or kept off by its objection);
- the technical and organisational measures (the DPA's Annex 3), each one a feature
  of the code, named with where it lives.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

from tidings.accounts.service import get_account
from tidings.core.data_categories import MESSAGE_BODY_DAYS, Retention
from tidings.core.services import Services
from tidings.privacy.bundles import PURPOSES, RIGHTS
from tidings.privacy.pdf import Line, document_pdf
from tidings.privacy.retention import limits_of, message_body_days
from tidings.routing.service import list_connectors
from tidings.storage.db import SYSTEM, Base
from tidings.subprocessors.register import for_account

__all__ = ["MEASURES", "SUBJECTS", "record_of_processing", "ropa_pdf"]

SUBJECTS = [
    "the people the account's messages are sent to",
    "the people who send messages to the account's numbers and addresses",
    "the account's own users (who log in to its portal)",
]
# Annex 3 (technical and organisational measures), as the code carries them out.
MEASURES = [
    ("Encryption at rest", "every personal field under AES-256-GCM, a key per account and a "
     "key per person, bound to its column (storage/ciphers.py)"),
    ("Pseudonymisation", "numbers and addresses found by keyed blind indexes (HMAC-SHA256), "
     "never by a plain hash (storage/ciphers.py)"),
    ("Key management", "keys in a key store apart from the data, wrapped by a key-encryption "
     "key per account, rotated without touching data (tidings keys rotate)"),
    ("Erasure", "a person's or an account's keys destroyed with an erasure ledger replayed "
     "on any restored backup before it serves (privacy/erasure.py)"),
    ("Retention", "message bodies deleted and addresses anonymised after the account's "
     "period, daily (privacy/retention.py); a terminated account purged within six months "
     "with a deletion certificate (privacy/termination.py)"),
    ("Access control", "roles with least privilege, API keys with scopes, two-factor "
     "authentication for the roles that need it, row-level security per account on "
     "PostgreSQL (accounts/permissions.py)"),
    ("Audit", "every write of personal data audited with its actor and request, the events "
     "chained under an HMAC with checkpoints, append-only on PostgreSQL (audit/)"),
    ("Data subjects' rights", "access, portability, rectification, erasure, restriction and "
     "objection requests with their legal deadlines (privacy/requests.py)"),
    ("Breach response", "a breach register with the 48-hour clock and a notice to each "
     "affected client (breaches/)"),
    ("Sub-processors", "a register with countries and transfer safeguards; each client told "
     "thirty days ahead, an objection keeps it off, and routing refuses a carrier whose "
     "company is not in effect for the account (subprocessors/)"),
    ("Verification", "the canary scan finds a person in clear or reversible form anywhere "
     "(tidings privacy scan)"),
]


async def record_of_processing(rt: Services, *, tenant: str,
                               now: datetime) -> dict[str, Any]:
    """The account's record, as JSON."""
    async with rt.db.transaction(tenant=tenant, write=False) as session:
        account = await get_account(session, account_id=tenant)
        days = await message_body_days(session, tenant=tenant, limits=limits_of(rt.settings))
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        carriers = [{"name": c.name, "kind": c.kind, "channels": list(c.channels)}
                    for c in await list_connectors(session)]
        register = await for_account(session, tenant, now)
    subprocessors = [{"id": entry.id, "legal_name": entry.legal_name,
                      "countries": entry.countries, "purpose": entry.purpose,
                      "data_categories": entry.data_categories,
                      "transfer_mechanism": entry.transfer_mechanism,
                      "effective_at": entry.effective_at.isoformat() if entry.effective_at
                      else None, "for_this_account": standing}
                     for entry, standing in register]
    return {
        "schema": "tidings.ropa/1", "generated_at": now.isoformat(),
        "controller": {"account_id": account.id, "name": account.name},
        "processor": {"name": "the operator of this Tidings platform",
                      "contact": rt.settings.platform_mail_from},
        "purposes": PURPOSES, "data_subjects": SUBJECTS,
        "data_categories": data_map(message_body_days=days),
        "recipients": carriers,
        "subprocessors": subprocessors,
        "transfers": [{"to": s["legal_name"], "countries": s["countries"],
                       "safeguard": s["transfer_mechanism"]}
                      for s in subprocessors if s["for_this_account"] != "kept_off"],
        "message_retention_days": days,
        "measures": [{"measure": m, "how": how} for m, how in MEASURES],
        "rights": RIGHTS,
    }


def data_map(*, message_body_days: int) -> list[dict[str, Any]]:
    """Each personal data category: where it is stored, and each rule that keeps it."""
    stored: dict[str, list[str]] = defaultdict(list)
    rules: dict[str, dict[tuple[str, str, str], Retention]] = defaultdict(dict)
    for table in Base.metadata.sorted_tables:
        for column in table.columns:
            category, rule = column.info.get("data_category"), column.info.get("retention")
            if not category or not category.startswith("user.") or rule is None:
                continue
            stored[category].append(f"{table.name}.{column.name}")
            rules[category][(rule.period, rule.action, rule.basis)] = rule
    return [{"category": category, "stored_in": sorted(stored[category]),
             "retention": [_rule(rule, message_body_days) for rule in
                           sorted(rules[category].values(), key=lambda r: r.period)]}
            for category in sorted(stored)]


def _rule(rule: Retention, days: int) -> dict[str, str]:
    period = f"{days} days" if rule.period == MESSAGE_BODY_DAYS else rule.period
    return {"period": period.replace("_", " "), "action": rule.action,
            "legal_basis": rule.basis.replace("_", " "), "why": rule.note}


def ropa_pdf(record: dict[str, Any]) -> bytes:
    lines: list[Line] = [
        ("Controller", f"{record['controller']['name']} ({record['controller']['account_id']})"),
        ("Processor", f"{record['processor']['name']}, {record['processor']['contact']}"),
        ("Generated", record["generated_at"]), ("Purposes", "")]
    lines += [(p["id"].replace("_", " "), p["description"]) for p in record["purposes"]]
    lines += [("Data subjects", "; ".join(record["data_subjects"])), ("Personal data", "")]
    for item in record["data_categories"]:
        kept = "; ".join(f"{r['period']}, then {r['action']} ({r['legal_basis']})"
                         for r in item["retention"])
        lines.append((item["category"], f"in {', '.join(item['stored_in'])}. Kept: {kept}"))
    lines += [("Recipients (carriers)", ", ".join(
        f"{c['name']} ({c['kind']})" for c in record["recipients"]) or "none configured"),
        ("Sub-processors", "; ".join(
            f"{s['legal_name']} ({', '.join(s['countries'])}; {s['purpose']}; "
            f"{s['for_this_account'].replace('_', ' ')})" for s in record["subprocessors"])
         or "none"),
        ("Transfers", "; ".join(f"{t['to']}: {', '.join(t['countries'])} under "
                                f"{t['safeguard']}" for t in record["transfers"]) or "none"),
        ("Technical and organisational measures", "")]
    lines += [(m["measure"], m["how"]) for m in record["measures"]]
    return document_pdf("Record of processing activities", lines)
