"""The portal in the application: its pages, its static files, its headers and its
answers to a refusal (``install_portal``, called by ``app.create_app``)."""

from __future__ import annotations

from fastapi import FastAPI

from tidings.portal.assets import STATIC_PATH, PortalStatic
from tidings.portal.deps import GateRedirect, LoginRequired
from tidings.portal.errors import login_required
from tidings.portal.pages import (
    audit,
    auth,
    breaches,
    consents,
    dashboard,
    keys,
    legal,
    messages,
    numbers,
    operator,
    operator_policies,
    operator_subprocessors,
    policies,
    privacy,
    send,
    send_csv,
    subaccounts,
    subprocessors,
    team,
    traffic,
    webhooks,
)
from tidings.portal.security import PageHeaders

# Every router of pages; the route-permission test walks these with the API's.
PAGE_ROUTERS = (auth.router, dashboard.router, messages.router, send.router, send_csv.router,
                keys.router, webhooks.router, numbers.router, team.router, subaccounts.router,
                audit.router, privacy.router, consents.router, operator.router,
                breaches.router,
                traffic.router,
                policies.router, operator_policies.router, legal.router,
                subprocessors.router, subprocessors.public_router,
                operator_subprocessors.router)


def install_portal(app: FastAPI) -> None:
    for router in PAGE_ROUTERS:
        app.include_router(router)
    app.mount(STATIC_PATH, PortalStatic(), name="portal-static")
    app.add_exception_handler(LoginRequired, login_required)
    app.add_exception_handler(GateRedirect, login_required)
    app.add_middleware(PageHeaders)
