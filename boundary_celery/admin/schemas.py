"""Response bodies of the admin API (pydantic) and the OpenAPI document built from them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic.json_schema import models_json_schema

from boundary_celery.core.job import Job
from boundary_celery.core.stats import JobStatsReport, QueueStats

__all__ = [
    "CancelResponse",
    "ErrorBody",
    "FailedJobsResponse",
    "JobDetailResponse",
    "ProbeResponse",
    "PurgeResponse",
    "QueueListResponse",
    "QueueSizeResponse",
    "RetryResponse",
    "ScheduledJob",
    "ScheduledJobsResponse",
    "openapi_document",
]

MAX_LIMIT = 1000


class ErrorBody(BaseModel):
    """Every 4xx/5xx body."""

    error: str = Field(description="What went wrong, for a human.")
    status: int = Field(description="The HTTP status code.")


class FailedJobsResponse(BaseModel):
    """``GET /api/admin/jobs/failed``: DLQ jobs, most recent first."""

    jobs: list[Job]
    limit: int
    dlq_size: int = Field(description="Jobs in the DLQ in total (may exceed len(jobs)).")


class JobDetailResponse(BaseModel):
    """``GET /api/admin/jobs/{id}``: the job plus store-only fields."""

    job: Job
    attempts: int = Field(description="Deliveries started for this job.")
    worker: str | None = Field(description="Worker that ran the last attempt.")
    in_dlq: bool = Field(description="Whether the job is in the dead letter queue.")


class RetryResponse(BaseModel):
    """``POST /api/admin/jobs/{id}/retry``."""

    message: str
    job: Job


class CancelResponse(BaseModel):
    """``POST /api/admin/jobs/{id}/cancel``: what happened and the job after it."""

    message: str = Field(description="Job cancelled, Cancellation requested (it is running), "
                                     "or Job already <status> (finished: unchanged).")
    job: Job


class QueueSizeResponse(BaseModel):
    """``GET /api/admin/jobs/queues/{name}/size``."""

    queue_name: str
    size: int
    size_by_priority: dict[str, int]


class QueueListResponse(BaseModel):
    queues: list[str]


class PurgeResponse(BaseModel):
    """DLQ purge: how many jobs were removed (records deleted too)."""

    purged: int


class ScheduledJob(BaseModel):
    id: str
    due_at_ms: int = Field(description="When the job becomes due (epoch ms).")
    job: Job | None = Field(description="The job record (null if it expired).")


class ScheduledJobsResponse(BaseModel):
    """``GET /api/admin/jobs/scheduled``: soonest first."""

    jobs: list[ScheduledJob]
    scheduled_count: int


class ProbeResponse(BaseModel):
    """``GET /healthz`` and ``GET /readyz``."""

    status: Literal["ok"]


_MODELS: list[type[BaseModel]] = [
    ErrorBody, FailedJobsResponse, JobDetailResponse, RetryResponse, CancelResponse,
    QueueSizeResponse,
    QueueListResponse, PurgeResponse, ScheduledJobsResponse, ScheduledJob, JobStatsReport,
    QueueStats, Job, ProbeResponse,
]


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _json(model: type[BaseModel], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": _ref(model)}}}


def _error(description: str) -> dict[str, Any]:
    return _json(ErrorBody, description)


_UUID_PARAM = {
    "name": "id", "in": "path", "required": True, "description": "Job id (a UUID).",
    "schema": {"type": "string", "format": "uuid"},
}
_TERMINATE_PARAM = {
    "name": "terminate", "in": "query", "required": False,
    "description": "Kill the job's process if it is running (Celery's revoke terminate).",
    "schema": {"type": "boolean", "default": False},
}
_LIMIT_DEFAULTS = {"failed": 20, "scheduled": 50}


def _limit_param(default: int) -> dict[str, Any]:
    return {
        "name": "limit", "in": "query", "required": False,
        "description": f"How many jobs (1..{MAX_LIMIT}).",
        "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT, "default": default},
    }


def openapi_document(*, auth: bool, metrics_auth: bool) -> dict[str, Any]:
    """The OpenAPI 3.1 document of the admin app."""
    _, top = models_json_schema(
        [(m, "serialization") for m in _MODELS], ref_template="#/components/schemas/{model}"
    )
    schemas: dict[str, Any] = dict(top.get("$defs", {}))
    # Without a token: a bearer token sent anyway is a 401, a non-loopback Host a 403.
    unauthorized = {"401": _error("Missing or wrong bearer token." if auth else
                                  "A bearer token was sent; this server has none.")}
    not_local = {} if auth else {"403": _error("The Host is not a loopback name.")}
    common = {**unauthorized, **not_local,
              "503": _error("The job store (Redis) is unavailable.")}
    # State-changing operations also refuse a foreign Origin.
    foreign = {"403": _error("Cross-origin request (Origin is not this server's)"
                             + ("." if auth else ", or the Host is not a loopback name."))}
    bad = {"400": _error("Malformed input (id, limit, flag).")}
    not_found = {"404": _error("Unknown job.")}

    def op(summary: str, ok: dict[str, Any], *, params: list[dict[str, Any]] | None = None,
           extra: dict[str, Any] | None = None, tag: str = "jobs",
           secured: bool = True) -> dict[str, Any]:
        out: dict[str, Any] = {
            "summary": summary, "tags": [tag], "parameters": params or [],
            "responses": {"200": ok, **(common if secured else {}), **(extra or {})},
        }
        if not secured:
            out["security"] = []
        return out

    paths: dict[str, Any] = {
        "/api/admin/jobs/stats": {"get": op(
            "Overall job statistics", _json(JobStatsReport, "Counters and per-queue stats."))},
        "/api/admin/jobs/failed": {
            "get": op("Failed jobs (the DLQ), most recent first",
                      _json(FailedJobsResponse, "DLQ jobs."),
                      params=[_limit_param(_LIMIT_DEFAULTS["failed"])], extra=bad),
            "delete": op("Purge the whole DLQ (records deleted)",
                         _json(PurgeResponse, "How many were purged."), extra=foreign),
        },
        "/api/admin/jobs/failed/{id}": {"delete": op(
            "Purge one DLQ job (record deleted)", _json(PurgeResponse, "Purged."),
            params=[_UUID_PARAM],
            extra={**bad, **foreign, "404": _error("No such job in the DLQ.")})},
        "/api/admin/jobs/scheduled": {"get": op(
            "Scheduled jobs (delayed and retries), soonest first",
            _json(ScheduledJobsResponse, "Scheduled jobs."),
            params=[_limit_param(_LIMIT_DEFAULTS["scheduled"])], extra=bad)},
        "/api/admin/jobs/queues": {"get": op(
            "Known queue names", _json(QueueListResponse, "Queue names."))},
        "/api/admin/jobs/queues/{name}/size": {"get": op(
            "Waiting jobs in a queue", _json(QueueSizeResponse, "Queue size."),
            params=[{"name": "name", "in": "path", "required": True,
                     "schema": {"type": "string"}, "description": "Queue name."}],
            extra={"404": _error("Unknown queue.")})},
        "/api/admin/jobs/{id}": {"get": op(
            "One job", _json(JobDetailResponse, "The job."), params=[_UUID_PARAM],
            extra={**bad, **not_found})},
        "/api/admin/jobs/{id}/retry": {"post": op(
            "Queue a dead (DLQ) job again now", _json(RetryResponse, "Job queued for retry."),
            params=[_UUID_PARAM, {
                "name": "reset_retries", "in": "query", "required": False,
                "description": "Start the retry count from zero.",
                "schema": {"type": "boolean", "default": False}}],
            extra={**bad, **not_found, **foreign,
                   "409": _error("The job exists but is not in the DLQ.")})},
        "/api/admin/jobs/{id}/cancel": {"post": {
            **op("Cancel a job", _json(CancelResponse, "The job after the call."),
                 params=[_UUID_PARAM, _TERMINATE_PARAM],
                 extra={**bad, **not_found, **foreign}),
            "description": (
                "A pending, scheduled or retrying job is cancelled at once and never runs. "
                "A running job keeps running with its cancellation requested (its handler "
                "may stop early) and Celery's revoke is broadcast; with terminate its "
                "process is killed, and the worker records it cancelled. A completed, "
                "failed or cancelled job is unchanged."),
            "requestBody": {"required": False, "content": {"application/json": {"schema": {
                "type": "object", "properties": {"terminate": {
                    "type": "boolean", "default": False,
                    "description": "As the query parameter."}}}}}},
        }},
        "/metrics": {"get": {
            "summary": "Prometheus metrics", "tags": ["metrics"], "parameters": [],
            **({} if metrics_auth else {"security": []}),
            "responses": {
                "200": {"description": "Prometheus text exposition.",
                        "content": {"text/plain": {"schema": {"type": "string"}}}},
                "401": _error("Missing or wrong bearer token." if metrics_auth else
                              "A bearer token was sent; this server has none."),
                **({} if metrics_auth else not_local),
                "503": _error("The job store (Redis) is unavailable."),
            }}},
        "/healthz": {"get": {
            "summary": "Liveness probe: the process answers", "tags": ["probes"],
            "parameters": [], "security": [],
            "responses": {"200": _json(ProbeResponse, "Alive.")}}},
        "/readyz": {"get": {
            "summary": "Readiness probe: the job store (Redis) answers", "tags": ["probes"],
            "parameters": [], "security": [],
            "responses": {"200": _json(ProbeResponse, "Ready."),
                          "503": _error("The job store (Redis) is unavailable.")}}},
        "/dashboard": {"get": {
            "summary": "The dashboard page (static; it asks for the token itself)",
            "tags": ["dashboard"], "parameters": [], "security": [],
            "responses": {"200": {"description": "HTML page.",
                                  "content": {"text/html": {"schema": {"type": "string"}}}}}}},
    }
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "boundary-celery admin API", "version": "1.0.0",
                 "description": "Job statistics, the dead letter queue, retries, "
                                "cancellation and metrics."},
        "paths": paths,
        "components": {"schemas": schemas},
    }
    if auth or metrics_auth:
        doc["components"]["securitySchemes"] = {"bearer": {"type": "http", "scheme": "bearer"}}
        if auth:
            doc["security"] = [{"bearer": []}]
    return doc
