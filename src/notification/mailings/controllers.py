from __future__ import annotations

import structlog
from advanced_alchemy.filters import LimitOffset
from litestar import Controller, Response, delete, get, patch, post, put
from litestar.di import Provide
from litestar.status_codes import HTTP_200_OK, HTTP_201_CREATED
from procrastinate import App

from notification.audit.trail import AuditTrail
from notification.errors import problem_responses
from notification.idempotency.store import IdempotencyKeyHeader, IdempotentCreate
from notification.jobs import provide_job_queue
from notification.mailings.deps import MailingId, provide_mailing_service
from notification.mailings.schemas import MailingCreate, MailingPatch, MailingRead, RetryRequest, RetryResult
from notification.mailings.services import MailingService
from notification.observability import bind_ids
from notification.pagination import Limit, Offset, Page

logger = structlog.get_logger(__name__)


class MailingController(Controller):
    path = "/mailings"
    tags = ["mailings"]
    dependencies = {
        "mailings": Provide(provide_mailing_service),
        "job_queue": Provide(provide_job_queue, sync_to_thread=False),
    }

    @post(
        "/",
        summary="Create a mailing; it starts at start_at, or at once when already due",
        description="With an `Idempotency-Key` header, a retried create answers the first answer again.",
        responses=problem_responses(400, 401, 409),
    )
    async def create_mailing(
        self,
        mailings: MailingService,
        audit: AuditTrail,
        job_queue: App,
        data: MailingCreate,
        idempotency_key: IdempotencyKeyHeader,
    ) -> Response[MailingRead]:
        idempotent = IdempotentCreate(mailings.repository.session, "POST /mailings", idempotency_key)
        if (previous := await idempotent.previous_answer(data, MailingRead)) is not None:
            logger.info("mailing create replayed", idempotency_key=idempotency_key)
            return previous
        mailing = await mailings.create_mailing(data, audit, job_queue, idempotent)
        bind_ids(mailing_id=mailing.id)
        logger.info("mailing created", start_at=mailing.start_at.isoformat(), end_at=mailing.end_at.isoformat())
        return Response(mailings.to_schema(mailing, schema_type=MailingRead), status_code=HTTP_201_CREATED)

    @get("/", summary="List mailings", responses=problem_responses(400, 401))
    async def list_mailings(self, mailings: MailingService, limit: Limit, offset: Offset) -> Page[MailingRead]:
        page = LimitOffset(limit, offset)
        rows, total = await mailings.list_mailings(page)
        return Page.of(mailings.to_schema(rows, total, filters=[page], schema_type=MailingRead))

    @get("/{mailing_id:int}", summary="Get a mailing", responses=problem_responses(400, 401, 404))
    async def get_mailing(self, mailings: MailingService, mailing_id: MailingId) -> MailingRead:
        return mailings.to_schema(await mailings.get_mailing(mailing_id), schema_type=MailingRead)

    @patch(
        "/{mailing_id:int}",
        summary="Change some fields of a mailing; it is planned again",
        responses=problem_responses(400, 401, 404, 409),
    )
    async def patch_mailing(
        self, mailings: MailingService, audit: AuditTrail, job_queue: App, mailing_id: MailingId, data: MailingPatch
    ) -> MailingRead:
        mailing, replan = await mailings.patch_mailing(mailing_id, data, audit, job_queue)
        logger.info("mailing updated", replanned=replan)
        return mailings.to_schema(mailing, schema_type=MailingRead)

    @put(
        "/{mailing_id:int}",
        summary="Replace a mailing; it is planned again",
        responses=problem_responses(400, 401, 404, 409),
    )
    async def replace_mailing(
        self, mailings: MailingService, audit: AuditTrail, job_queue: App, mailing_id: MailingId, data: MailingCreate
    ) -> MailingRead:
        mailing, replan = await mailings.replace_mailing(mailing_id, data, audit, job_queue)
        logger.info("mailing updated", replanned=replan, replaced=True)
        return mailings.to_schema(mailing, schema_type=MailingRead)

    @delete(
        "/{mailing_id:int}",
        summary="Delete a mailing; pending messages are never sent",
        responses=problem_responses(400, 401, 404),
    )
    async def delete_mailing(self, mailings: MailingService, audit: AuditTrail, mailing_id: MailingId) -> None:
        await mailings.delete_mailing(mailing_id, audit)
        logger.info("mailing deleted")

    @post(
        "/{mailing_id:int}/pause",
        status_code=HTTP_200_OK,
        summary="Pause a mailing: no new provider request for it starts a second after this answers",
        description=(
            "Requests already in flight finish and are recorded; pending messages stay pending and its end "
            "still rules (pending past `end_at` expire). Pausing a paused mailing changes nothing; a finished "
            "one is a 409."
        ),
        responses=problem_responses(400, 401, 404, 409),
    )
    async def pause_mailing(self, mailings: MailingService, audit: AuditTrail, mailing_id: MailingId) -> MailingRead:
        mailing = await mailings.pause_mailing(mailing_id, audit)
        logger.info("mailing paused", paused_at=mailing.paused_at.isoformat() if mailing.paused_at else None)
        return mailings.to_schema(mailing, schema_type=MailingRead)

    @post(
        "/{mailing_id:int}/resume",
        status_code=HTTP_200_OK,
        summary="Resume a paused mailing where it stopped; nothing is sent twice",
        description="Resuming a mailing that is not paused changes nothing; a finished one is a 409.",
        responses=problem_responses(400, 401, 404, 409),
    )
    async def resume_mailing(
        self, mailings: MailingService, audit: AuditTrail, job_queue: App, mailing_id: MailingId
    ) -> MailingRead:
        mailing, replan = await mailings.resume_mailing(mailing_id, audit, job_queue)
        logger.info("mailing resumed", replanned=replan)
        return mailings.to_schema(mailing, schema_type=MailingRead)

    @post(
        "/{mailing_id:int}/retry",
        status_code=HTTP_200_OK,
        summary="Send the failed or expired messages of a mailing again",
        description=(
            "Messages in the given statuses go back to pending (their attempts and last error kept until the "
            "next answer) and are sent again. `end_at` moves the mailing's end: it must be in the future, and "
            "is required when the mailing has ended. Sent and cancelled messages are never retried; a mailing whose "
            "messages retention deleted is a 409."
        ),
        responses=problem_responses(400, 401, 404, 409),
    )
    async def retry_messages(
        self, mailings: MailingService, audit: AuditTrail, job_queue: App, mailing_id: MailingId, data: RetryRequest
    ) -> RetryResult:
        mailing, requeued, _ = await mailings.retry_messages(mailing_id, data, audit, job_queue)
        logger.info(
            "mailing messages retried",
            statuses=sorted(data.statuses),
            requeued=requeued,
            end_at=mailing.end_at.isoformat(),
        )
        return RetryResult(requeued=requeued, mailing=mailings.to_schema(mailing, schema_type=MailingRead))
