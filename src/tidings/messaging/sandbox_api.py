"""Sandbox endpoints: simulate what a carrier would send us."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from tidings.accounts.deps import MaySendMessages
from tidings.messaging.inbound import receive_inbound
from tidings.messaging.schemas import MAX_ADDRESS_CHARS, MAX_BODY_CHARS, MessageOut
from tidings.messaging.service import created_out
from tidings.web.deps import PROBLEMS_OF_API_KEY_ROUTES, RuntimeDep
from tidings.web.errors import problem_responses

router = APIRouter(prefix="/v1/sandbox", tags=["sandbox"],
                   responses=PROBLEMS_OF_API_KEY_ROUTES)


class SimulatedInbound(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: str = Field(alias="from", min_length=1, max_length=MAX_ADDRESS_CHARS)
    to: str = Field(min_length=1, max_length=MAX_ADDRESS_CHARS)
    body: str = Field(min_length=1, max_length=MAX_BODY_CHARS)
    channel: str = Field(default="sms", pattern="^sms$")


@router.post("/inbound", status_code=201, response_model=MessageOut,
             summary="Simulate an inbound message to one of your numbers",
             operation_id="simulate_inbound", responses=problem_responses(413))
async def simulate_inbound(body: SimulatedInbound, rt: RuntimeDep,
                           principal: MaySendMessages) -> MessageOut:
    created = await receive_inbound(rt, sender=body.from_, to=body.to, body=body.body,
                                    channel=body.channel, actor=principal.actor,
                                    allowed_root=principal.tenant)
    return created_out(created)
