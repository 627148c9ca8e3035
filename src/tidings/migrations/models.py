"""Import every model module so ``Base.metadata`` knows all tables."""

from __future__ import annotations


def load_all() -> None:
    import tidings.accounts.models
    import tidings.audit.models
    import tidings.breaches.models
    import tidings.consents.models
    import tidings.jobs.outbox
    import tidings.messaging.models
    import tidings.numbers.models
    import tidings.operators.models
    import tidings.policies.models
    import tidings.privacy.models
    import tidings.routing.models
    import tidings.signup.models
    import tidings.smpp_gateway.models
    import tidings.subprocessors.models
    import tidings.usage_stats.models
    import tidings.users.models
    import tidings.webhooks.models
    import tidings.whatsapp.models  # noqa: F401
