"""``create_app(settings)``: the FastAPI application; nothing connects before start-up."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from tidings import __version__
from tidings.accounts.api import router as accounts_router
from tidings.audit.api import router as audit_router
from tidings.breaches.api import operator_router as operator_breaches_router
from tidings.consents.api import router as consents_router
from tidings.core.clock import Clock
from tidings.core.settings import Settings
from tidings.mail.api import operator_router as operator_notices_router
from tidings.messaging.api import router as messages_router
from tidings.messaging.fast_send import FastSend
from tidings.messaging.reports_api import router as reports_router
from tidings.messaging.sandbox_api import router as sandbox_router
from tidings.numbers.api import operator_router as operator_numbers_router
from tidings.numbers.api import router as numbers_router
from tidings.operators.accounts_api import router as operator_accounts_router
from tidings.operators.api import router as ops_router
from tidings.operators.break_glass_api import account_router as break_glass_router
from tidings.operators.break_glass_api import operator_router as operator_break_glass_router
from tidings.policies.api import operator_router as operator_policies_router
from tidings.policies.api import router as policies_router
from tidings.portal.errors import error_page
from tidings.portal.routes import install_portal
from tidings.privacy.api import operator_router as operator_privacy_router
from tidings.privacy.api import router as privacy_router
from tidings.privacy.api import schemas_router as privacy_schemas_router
from tidings.privacy.purges_api import operator_router as operator_purges_router
from tidings.privacy.retention_api import router as retention_router
from tidings.privacy.ropa_api import router as ropa_router
from tidings.routing.api import router as operator_router
from tidings.runtime import close_runtime, open_runtime
from tidings.signup.api import operator_router as operator_signup_router
from tidings.signup.api import router as verification_router
from tidings.signup.api import signup_router
from tidings.subprocessors.api import operator_router as operator_subprocessors_router
from tidings.subprocessors.api import public_router as public_subprocessors_router
from tidings.subprocessors.api import router as subprocessors_router
from tidings.usage_stats.api import operator_router as operator_stats_router
from tidings.users.api import auth_router, users_router
from tidings.web.api_docs import install_api_docs
from tidings.web.errors import install_error_handlers
from tidings.web.middleware import BodyLimit, RequestLog
from tidings.web.openapi import install_openapi
from tidings.webhooks.api import router as webhooks_router
from tidings.whatsapp.api import router as whatsapp_router

DESCRIPTION = """Send and receive messages, get signed webhooks for every status change.

Authenticate with `Authorization: Bearer <api key>` (`tdk_...`; the operator API takes
an operator key, `tdo_...`). Errors are RFC 9457 `application/problem+json` with a stable
`code`; invalid input is a `400`, never a `422`. Lists refuse query parameters they do
not take.
"""


# Every router of the application; the route-permission test walks these.
ROUTERS = (messages_router, accounts_router, auth_router, users_router, audit_router,
           break_glass_router, numbers_router, webhooks_router, sandbox_router,
           operator_router, operator_numbers_router, operator_break_glass_router,
           operator_notices_router, whatsapp_router, ops_router, signup_router,
           verification_router, operator_signup_router, reports_router,
           operator_accounts_router, privacy_router, privacy_schemas_router,
           operator_privacy_router, retention_router, operator_purges_router,
           ropa_router,
           operator_breaches_router, operator_stats_router, consents_router,
           policies_router, operator_policies_router,
           subprocessors_router, operator_subprocessors_router, public_subprocessors_router)


def create_app(settings: Settings | None = None, *, clock: Clock | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        app.state.runtime = await open_runtime(settings, clock=clock)
        try:
            yield
        finally:
            await close_runtime(app.state.runtime)

    app = FastAPI(title="Tidings", version=__version__, description=DESCRIPTION,
                  lifespan=lifespan, docs_url=None, redoc_url=None)
    install_error_handlers(app, pages=error_page)
    install_api_docs(app)
    install_openapi(app)
    for router in ROUTERS:
        app.include_router(router)
    install_portal(app)  # /portal and /operator: pages, not in the OpenAPI description
    app.add_middleware(FastSend)  # inside the body limit and the access log
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RequestLog)  # outermost: ids, the access log and metrics see all
    return app


def app_from_environment() -> FastAPI:
    """The app of one of several API processes (``tidings serve --processes N``)."""
    from tidings.core.gc_tuning import tune_for_server
    from tidings.core.logs import configure_logging

    settings = Settings()
    configure_logging(settings.log_level)
    app = create_app(settings)
    tune_for_server()
    return app
