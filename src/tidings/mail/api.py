"""The operator's notices: ``POST /v1/operator/notices`` (operator keys only)."""

from __future__ import annotations

from fastapi import APIRouter

from tidings.audit.service import Actor
from tidings.mail.notices import send_notice
from tidings.mail.schemas import NoticeIn, NoticeOut
from tidings.operators.deps import CurrentOperator
from tidings.web.deps import PROBLEMS_OF_OPERATOR_ROUTES, RuntimeDep
from tidings.web.errors import problem_responses

operator_router = APIRouter(prefix="/v1/operator", tags=["operator"],
                            responses=PROBLEMS_OF_OPERATOR_ROUTES)


@operator_router.post("/notices", status_code=202, response_model=NoticeOut,
                      summary="Send a notice to the owners of one account or of all",
                      operation_id="send_notice", responses=problem_responses(404, 409, 413))
async def post_notice(body: NoticeIn, rt: RuntimeDep, operator: CurrentOperator) -> NoticeOut:
    sent = await send_notice(rt, account_id=body.account_id, everyone=body.all,
                             subject=body.subject, body=body.body,
                             actor=Actor("operator", operator.id))
    return NoticeOut(queued=sent.queued, accounts=sent.accounts, mail_ids=sent.mail_ids)
