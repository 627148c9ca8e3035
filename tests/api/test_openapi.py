"""The OpenAPI description is what the API does: a client generated from it with
``openapi-python-client`` sends, lists and reads every error as a typed ``Problem``
against the real app on a loopback port; and the schema's rules hold for every route."""

from __future__ import annotations

import asyncio
import importlib
import json
import re
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import uvicorn

from tests.conftest import Tenant
from tidings.app import create_app
from tidings.core.settings import Settings
from tidings.runtime import Runtime

GENERATOR = str(Path(sys.executable).with_name("openapi-python-client"))
CLIENT_PACKAGE = "tidings_generated_client"
PROBLEM = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
# Meta calls these, signed with the connector's app secret; no API key is involved.
# Carriers' callbacks, and published documents anyone may read.
NOT_CLIENT_CALLS = {"verify_whatsapp_webhook", "receive_whatsapp_webhook", "get_privacy_schema",
                    "get_public_subprocessors"}
# Logging in is how a person gets a token: these take none.
LOG_IN_CALLS = {"log_in", "log_in_second_factor"}
# Signing up is how a client gets an account, a reset how a person gets back in:
# these take no credential either.
SIGN_UP_CALLS = {"sign_up", "confirm_signup_address", "ask_password_reset",
                 "confirm_password_reset"}


def openapi_of_the_app(tmp_path: Path) -> dict[str, Any]:
    schema: dict[str, Any] = create_app(Settings(data_dir=tmp_path / "data")).openapi()
    return schema


def operations(schema: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, methods in schema["paths"].items():
        for method, operation in methods.items():
            yield path, method, operation


# --------------------------------------------------------------------------- the schema


@pytest.fixture(scope="module")
def schema(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return openapi_of_the_app(tmp_path_factory.mktemp("schema"))


# The only 422 Tidings answers: a new password the policy refuses.
SETS_A_PASSWORD = {"change_password", "confirm_password_reset", "sign_up"}


def test_no_operation_declares_a_422_but_a_refused_password(schema: dict[str, Any]) -> None:
    for path, method, operation in operations(schema):
        declared = "422" in operation["responses"]
        assert declared == (operation["operationId"] in SETS_A_PASSWORD), (method, path)
    assert "HTTPValidationError" not in schema["components"]["schemas"]


def test_every_v1_client_operation_has_a_key_and_declares_400_and_401(
        schema: dict[str, Any]) -> None:
    checked = 0
    for path, method, operation in operations(schema):
        if not path.startswith("/v1/") or operation["operationId"] in NOT_CLIENT_CALLS:
            continue
        if operation["operationId"] in LOG_IN_CALLS:
            assert "security" not in operation, (method, path)
            assert {"400", "401", "429"} <= set(operation["responses"]), (method, path)
            continue
        if operation["operationId"] in SIGN_UP_CALLS:
            assert "security" not in operation, (method, path)
            assert "400" in operation["responses"], (method, path)
            continue
        schemes = [name for requirement in operation["security"] for name in requirement]
        expected = "OperatorKey" if path.startswith("/v1/operator/") else "ApiKey"
        assert schemes == [expected], (method, path)
        assert {"400", "401"} <= set(operation["responses"]), (method, path)
        names = {p["name"].lower() for p in operation.get("parameters", [])}
        assert "authorization" not in names, (method, path)  # a scheme, not a header
        checked += 1
    assert checked >= 25
    assert {s["scheme"] for s in schema["components"]["securitySchemes"].values()} == {"bearer"}


def test_every_error_answer_is_a_problem(schema: dict[str, Any]) -> None:
    for path, method, operation in operations(schema):
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                assert response["content"] == PROBLEM, (method, path, status)
    problem = schema["components"]["schemas"]["Problem"]
    assert {"type", "title", "status", "code", "detail"} <= set(problem["required"])


def test_operation_ids_are_unique_and_chosen(schema: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, _, operation in operations(schema)]
    assert len(ids) == len(set(ids))
    for path, method, operation in operations(schema):
        # FastAPI's default is the function's name, the path and the method.
        fastapi_default_suffix = re.sub(r"\W", "_", path) + "_" + method
        assert not operation["operationId"].endswith(fastapi_default_suffix), (method, path)
        assert re.fullmatch(r"[a-z]+(_[a-z]+)*", operation["operationId"]), (method, path)
    assert schema["paths"]["/v1/messages"]["post"]["operationId"] == "send_message"
    assert schema["paths"]["/v1/messages"]["get"]["operationId"] == "list_messages"


def test_status_and_channel_are_enums(schema: dict[str, Any]) -> None:
    schemas = schema["components"]["schemas"]
    message = schemas["MessageOut"]["properties"]
    assert message["status"] == {"$ref": "#/components/schemas/Status"}
    assert message["channel"] == {"$ref": "#/components/schemas/Channel"}
    assert set(schemas["Channel"]["enum"]) == {"sms", "email", "whatsapp"}
    assert "delivered" in schemas["Status"]["enum"]
    listing = schema["paths"]["/v1/messages"]["get"]["parameters"]
    refs = {p["name"]: p["schema"]["anyOf"][0] for p in listing
            if p["name"] in ("status", "channel", "direction")}
    assert refs == {"status": {"$ref": "#/components/schemas/Status"},
                    "channel": {"$ref": "#/components/schemas/Channel"},
                    "direction": {"$ref": "#/components/schemas/Direction"}}


def test_metrics_are_text(schema: dict[str, Any]) -> None:
    content = schema["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(content) == ["text/plain"]


# --------------------------------------------------------------------------- a generated client


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModuleType]:
    """``openapi-python-client`` run on the app's schema; its package, imported."""
    root = tmp_path_factory.mktemp("client")
    spec = root / "openapi.json"
    spec.write_text(json.dumps(openapi_of_the_app(root)))
    config = root / "config.yaml"
    config.write_text("post_hooks: []\n")  # no formatting of the generated code
    made = subprocess.run(
        [GENERATOR, "generate", "--path", str(spec), "--meta", "none", "--config", str(config),
         "--output-path", str(root / CLIENT_PACKAGE)],
        capture_output=True, text=True, timeout=300, check=False)
    assert made.returncode == 0, made.stdout + made.stderr
    assert "Warning" not in made.stdout + made.stderr, made.stdout + made.stderr
    sys.path.insert(0, str(root))
    try:
        yield importlib.import_module(CLIENT_PACKAGE)
    finally:
        sys.path.remove(str(root))
        for name in [n for n in sys.modules if n.split(".")[0] == CLIENT_PACKAGE]:
            del sys.modules[name]


@pytest.fixture
async def server_url(rt: Runtime) -> AsyncIterator[str]:
    """The real app served by uvicorn on a free loopback port, on this event loop."""
    app = create_app(rt.settings)
    app.state.runtime = rt  # the fixture owns the runtime's life, not the app's lifespan
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, lifespan="off",
                                           log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started:
        assert not serving.done(), serving
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await serving


def part(client_package: ModuleType, name: str) -> Any:
    return importlib.import_module(f"{client_package.__name__}.{name}")


async def test_a_generated_client_sends_lists_and_reads_problems(
        generated: ModuleType, server_url: str, acme: Tenant) -> None:
    client_module = part(generated, "client")
    models = part(generated, "models")
    send_message = part(generated, "api.messages.send_message")
    list_messages = part(generated, "api.messages.list_messages")
    get_message = part(generated, "api.messages.get_message")
    # Every status the server answers must be one the schema declared.
    client = client_module.AuthenticatedClient(base_url=server_url, token=acme.made.api_key,
                                               raise_on_unexpected_status=True)
    async with client:
        sent = await send_message.asyncio_detailed(client=client, body=models.SendMessage(
            to="+12025550173", from_="Acme", body="Hello from a generated client"))
        assert sent.status_code == 201, sent.content
        assert isinstance(sent.parsed, models.MessageOut)
        assert sent.parsed.channel == models.Channel.SMS
        assert isinstance(sent.parsed.status, models.Status)

        page = await list_messages.asyncio(client=client, channel=models.Channel.SMS,
                                           direction=models.Direction.OUTBOUND)
        assert isinstance(page, models.MessagePage)
        assert [m.id for m in page.data] == [sent.parsed.id]

        missing = await get_message.asyncio(client=client, message_id="msg_" + "0" * 26)
        assert isinstance(missing, models.Problem)
        assert (missing.status, missing.code) == (404, "message_not_found")

        bad = await list_messages.asyncio(client=client, to="not a number")
        assert isinstance(bad, models.Problem)
        assert bad.status == 400

        invalid = await send_message.asyncio(client=client, body=models.SendMessage(
            to="+12025550173", from_="Acme", body="x", channel="fax"))
        assert isinstance(invalid, models.Problem)
        assert (invalid.status, invalid.code) == (400, "channel_unavailable")

    stranger = client_module.AuthenticatedClient(base_url=server_url, token="tdk_0_nope",
                                                 raise_on_unexpected_status=True)
    async with stranger:
        refused = await list_messages.asyncio(client=stranger)
        assert isinstance(refused, models.Problem)
        assert (refused.status, refused.code) == (401, "invalid_api_key")
