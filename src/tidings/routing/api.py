"""The operator API: carrier connectors and routing rules (``/v1/operator/...``).

It answers only to operator keys (``tidings operator-keys create``), never to a
client's API key.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Response

from tidings.operators.deps import CurrentOperator
from tidings.routing.schemas import (
    ConnectorErrorOut,
    ConnectorIn,
    ConnectorOut,
    ConnectorSubprocessorIn,
    RouteIn,
    RouteOut,
    RouteSaved,
)
from tidings.routing.service import (
    OPERATOR_KEYRING,
    connector_out,
    do_create_connector,
    do_remove_connector,
    do_remove_route,
    do_set_subprocessor,
    get_connector,
    list_connector_errors,
    list_connectors,
    list_routes,
    route_out,
    save_route,
)
from tidings.storage.db import SYSTEM
from tidings.web.deps import PROBLEMS_OF_OPERATOR_ROUTES, KnownQueryOnly, RuntimeDep
from tidings.web.errors import problem_responses

router = APIRouter(prefix="/v1/operator", tags=["operator"],
                   responses=PROBLEMS_OF_OPERATOR_ROUTES)


@router.post("/connectors", status_code=201, response_model=ConnectorOut,
             summary="Add a carrier connector",
             operation_id="create_connector", responses=problem_responses(409, 413))
async def add_connector(body: ConnectorIn, rt: RuntimeDep,
                        _operator: CurrentOperator) -> ConnectorOut:
    keys = await rt.vault.keys_for(OPERATOR_KEYRING)
    async with rt.db.transaction(tenant=SYSTEM) as session:
        row = await do_create_connector(session, keys=keys, body=body, now=rt.clock.now())
        return connector_out(keys, row)


@router.get("/connectors", response_model=list[ConnectorOut], summary="List connectors",
            dependencies=[KnownQueryOnly], operation_id="list_connectors")
async def get_connectors(rt: RuntimeDep, _operator: CurrentOperator) -> list[ConnectorOut]:
    keys = await rt.vault.keys_for(OPERATOR_KEYRING)
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return [connector_out(keys, r)
                for r in await list_connectors(session)]


@router.get("/connectors/{name}", response_model=ConnectorOut, summary="Show a connector",
            operation_id="get_connector", responses=problem_responses(404))
async def show_connector(name: str, rt: RuntimeDep, _operator: CurrentOperator) -> ConnectorOut:
    keys = await rt.vault.keys_for(OPERATOR_KEYRING)
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        row = await get_connector(session, name=name)
        return connector_out(keys, row)


@router.put("/connectors/{name}/subprocessor", response_model=ConnectorOut,
            summary="Name the company behind a connector (the sub-processor register)",
            operation_id="set_connector_subprocessor", responses=problem_responses(404, 409))
async def set_subprocessor(name: str, body: ConnectorSubprocessorIn, rt: RuntimeDep,
                           _operator: CurrentOperator) -> ConnectorOut:
    keys = await rt.vault.keys_for(OPERATOR_KEYRING)
    async with rt.db.transaction(tenant=SYSTEM) as session:
        row = await do_set_subprocessor(session, name=name,
                                        subprocessor_id=body.subprocessor_id,
                                        now=rt.clock.now())
        out = connector_out(keys, row)
    rt.routes.invalidate()
    return out


@router.get("/connectors/{name}/errors", response_model=list[ConnectorErrorOut],
            summary="Problems the carrier reported about a connector, newest first",
            operation_id="list_connector_errors", dependencies=[KnownQueryOnly],
            responses=problem_responses(404))
async def show_connector_errors(
        name: str, rt: RuntimeDep, _operator: CurrentOperator,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[ConnectorErrorOut]:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return await list_connector_errors(session, name=name, limit=limit)


@router.delete("/connectors/{name}", status_code=204, summary="Remove a connector",
               operation_id="remove_connector", responses=problem_responses(404, 409))
async def remove_connector(name: str, rt: RuntimeDep, _operator: CurrentOperator) -> Response:
    async with rt.db.transaction(tenant=SYSTEM) as session:
        await do_remove_connector(session, name=name)
    return Response(status_code=204)


@router.post("/routes", status_code=201, response_model=RouteSaved, summary="Add a route",
             operation_id="create_route", responses=problem_responses(413))
async def add_route(body: RouteIn, rt: RuntimeDep, _operator: CurrentOperator) -> RouteSaved:
    async with rt.db.transaction(tenant=SYSTEM) as session:
        out = await save_route(session, body=body, now=rt.clock.now())
    rt.routes.invalidate()
    return out


@router.get("/routes", response_model=list[RouteOut], summary="List routes",
            dependencies=[KnownQueryOnly], operation_id="list_routes")
async def get_routes(rt: RuntimeDep, _operator: CurrentOperator) -> list[RouteOut]:
    async with rt.db.transaction(tenant=SYSTEM, write=False) as session:
        return [route_out(r) for r in await list_routes(session)]


@router.delete("/routes/{route_id}", status_code=204, summary="Remove a route",
               operation_id="remove_route", responses=problem_responses(404))
async def remove_route(route_id: str, rt: RuntimeDep, _operator: CurrentOperator) -> Response:
    async with rt.db.transaction(tenant=SYSTEM) as session:
        await do_remove_route(session, route_id=route_id)
    rt.routes.invalidate()
    return Response(status_code=204)
