"""The admin ASGI app: JSON API over the job store, the dashboard and ``/metrics``.

Endpoints are synchronous (Starlette runs them in its thread pool; the Redis client is
thread safe). Every failure is a JSON :class:`~boundary_celery.admin.schemas.ErrorBody`
with a 4xx status for bad input, 503 when Redis is unreachable; never an HTML 500.
"""

from __future__ import annotations

import functools
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from importlib import resources
from typing import TYPE_CHECKING, Any

import anyio.from_thread
import redis
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from boundary_celery.admin.schemas import (
    MAX_LIMIT,
    CancelResponse,
    ErrorBody,
    FailedJobsResponse,
    JobDetailResponse,
    PurgeResponse,
    QueueListResponse,
    QueueSizeResponse,
    RetryResponse,
    ScheduledJob,
    ScheduledJobsResponse,
    openapi_document,
)
from boundary_celery.admin.security import (
    SAFE_METHODS,
    bind_refusal,
    is_loopback,
    same_origin,
    split_host,
    token_ok,
)
from boundary_celery.settings import AdminSettings
from boundary_celery.shell.metrics import make_registry, render_metrics

if TYPE_CHECKING:
    from boundary_celery.shell.jobs import Jobs

__all__ = ["ApiError", "InsecureBindError", "create_admin_app", "serve_admin"]

log = logging.getLogger("boundary_celery.admin")

Handler = Callable[[Request], Response]


class ApiError(Exception):
    """An error answered as ``{"error": message, "status": status}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def error_response(
    status: int, message: str, headers: Mapping[str, str] | None = None
) -> Response:
    body = ErrorBody(error=message, status=status).model_dump()
    return JSONResponse(body, status_code=status, headers=headers)


def model_response(model: BaseModel, status: int = 200) -> Response:
    return JSONResponse(model.model_dump(mode="json"), status_code=status)


class InsecureBindError(ValueError):
    """Serving the admin API on a non-loopback address without a token (nor ``insecure``)."""


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


_UNAUTHORIZED = {"WWW-Authenticate": 'Bearer realm="boundary-admin"'}


def parse_job_id(raw: str) -> str:
    try:
        return str(uuid.UUID(raw))
    except (ValueError, AttributeError, TypeError):
        raise ApiError(400, f"job id must be a UUID, got {raw!r}") from None


def parse_limit(request: Request, default: int) -> int:
    raw = request.query_params.get("limit")
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ApiError(400, f"limit must be an integer between 1 and {MAX_LIMIT}, "
                            f"got {raw!r}") from None
    if not 1 <= value <= MAX_LIMIT:
        raise ApiError(400, f"limit must be between 1 and {MAX_LIMIT}, got {value}")
    return value


def parse_flag(request: Request, name: str) -> bool:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return False
    value = raw.strip().lower()
    if value in ("true", "1", "yes"):
        return True
    if value in ("false", "0", "no"):
        return False
    raise ApiError(400, f"{name} must be true or false, got {raw!r}")


def parse_body_flag(request: Request, name: str) -> bool | None:
    """``name`` from the request's optional JSON object body (None when absent). Call it
    from a sync endpoint (Starlette's thread pool): the body is read on the event loop."""
    raw = anyio.from_thread.run(request.body)
    if not raw.strip():
        return None
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError(400, "the request body must be a JSON object") from None
    if not isinstance(body, dict):
        raise ApiError(400, "the request body must be a JSON object")
    value = body.get(name)
    if value is None or isinstance(value, bool):
        return value
    raise ApiError(400, f"{name} must be true or false, got {value!r}")


_CANCEL_MESSAGES = {"cancel": "Job cancelled", "request": "Cancellation requested"}


def create_admin_app(jobs: Jobs, settings: AdminSettings | None = None) -> Starlette:
    """The admin ASGI app for ``jobs`` (auth from ``settings``, default ``jobs.settings.admin``).

    With ``settings.token`` every route but the static dashboard page requires
    ``Authorization: Bearer <token>``. ``/metrics`` accepts ``settings.metrics_token`` (or
    the admin token), and is open when neither is set or ``settings.metrics_public``.
    Without a token a request that sends a bearer token is refused (401), and one whose
    ``Host`` is not a loopback name too (403, unless ``settings.insecure``). A POST or
    DELETE whose ``Origin`` is not the server's own (nor in ``allowed_origins``) is
    refused (403). No CORS headers are ever sent.
    """
    cfg = settings if settings is not None else jobs.settings.admin
    admin_token = cfg.token or None
    metrics_token = cfg.metrics_token or None
    registry = make_registry(jobs)
    openapi = openapi_document(
        auth=admin_token is not None,
        metrics_auth=(metrics_token or admin_token) is not None and not cfg.metrics_public)

    def refusal(request: Request, needed: list[str], public: bool) -> Response | None:
        """The error answer to a request these rules refuse, or None to serve it."""
        if request.method not in SAFE_METHODS:
            origin = request.headers.get("origin")
            if origin is not None and not same_origin(
                    origin, request.headers.get("host", ""), cfg.allowed_origins):
                return error_response(
                    403, f"cross-origin {request.method} refused (Origin {origin!r} is not "
                         "this server's; see [admin] allowed_origins)")
        if public:
            return None
        given = _bearer(request)
        if needed:
            if not token_ok(given, needed):
                return error_response(
                    401, "missing or invalid bearer token (Authorization: Bearer <token>)",
                    headers=_UNAUTHORIZED)
            return None
        if given is not None:
            return error_response(
                401, "invalid bearer token: this server has no admin token configured "
                     "(send no Authorization header)", headers=_UNAUTHORIZED)
        host = split_host(request.headers.get("host", ""))[0]
        if not cfg.insecure and not is_loopback(host):
            return error_response(
                403, f"this admin server has no token, so it answers only requests "
                     f"addressed to localhost, 127.0.0.1 or [::1] (Host {host!r}); "
                     "set [admin] token to serve other names")
        return None

    def guarded(*tokens: str | None, public: bool = False) -> Callable[[Handler], Handler]:
        needed = [t for t in tokens if t]

        def wrap(fn: Handler) -> Handler:
            @functools.wraps(fn)
            def endpoint(request: Request) -> Response:
                refused = refusal(request, needed, public)
                if refused is not None:
                    return refused
                try:
                    return fn(request)
                except ApiError as exc:
                    return error_response(exc.status, exc.message)
                except redis.RedisError as exc:
                    log.warning("admin: job store unavailable: %s", exc)
                    return error_response(503, f"job store unavailable: {exc}")
                except Exception:
                    log.exception("admin: unexpected error on %s", request.url.path)
                    return error_response(500, "internal error (see the admin server log)")

            return endpoint

        return wrap

    api = guarded(admin_token)

    def known_queues() -> set[str]:
        names = set(jobs.list_queues())
        names.update(jobs.settings.store.declared_queues or ())
        return names

    @api
    def stats(request: Request) -> Response:
        return model_response(jobs.job_stats())

    @api
    def failed(request: Request) -> Response:
        limit = parse_limit(request, 20)
        return model_response(FailedJobsResponse(
            jobs=jobs.failed_jobs(limit), limit=limit, dlq_size=jobs.dlq_size()))

    @api
    def purge_all(request: Request) -> Response:
        return model_response(PurgeResponse(purged=jobs.purge_dlq(None)))

    @api
    def purge_one(request: Request) -> Response:
        jid = parse_job_id(request.path_params["id"])
        removed = jobs.purge_dlq(jid)
        if not removed:
            raise ApiError(404, f"job {jid} is not in the dead letter queue")
        return model_response(PurgeResponse(purged=removed))

    @api
    def scheduled(request: Request) -> Response:
        limit = parse_limit(request, 50)
        items = [ScheduledJob(id=e.id, due_at_ms=e.due_at_ms, job=e.job)
                 for e in jobs.scheduled_jobs(limit)]
        return model_response(ScheduledJobsResponse(
            jobs=items, scheduled_count=jobs.scheduled_count()))

    @api
    def queues(request: Request) -> Response:
        return model_response(QueueListResponse(queues=sorted(known_queues())))

    @api
    def queue_size(request: Request) -> Response:
        name = request.path_params["name"]
        if name not in known_queues():
            raise ApiError(404, f"unknown queue {name!r} (known: "
                                f"{', '.join(sorted(known_queues())) or 'none'})")
        by_level = jobs.queue_sizes_by_priority(name)
        return model_response(QueueSizeResponse(
            queue_name=name, size=sum(by_level.values()), size_by_priority=by_level))

    @api
    def job_detail(request: Request) -> Response:
        jid = parse_job_id(request.path_params["id"])
        found = jobs.job_detail(jid)
        if found is None:
            raise ApiError(404, f"job {jid} not found")
        return model_response(JobDetailResponse(
            job=found.job, attempts=found.attempts, worker=found.worker, in_dlq=found.in_dlq))

    @api
    def retry(request: Request) -> Response:
        jid = parse_job_id(request.path_params["id"])
        reset = parse_flag(request, "reset_retries")
        job = jobs.retry_job(jid, reset_retries=reset)
        if job is None:
            if jobs.find_job(jid) is None:
                raise ApiError(404, f"job {jid} not found")
            raise ApiError(409, f"job {jid} is not in the dead letter queue; only dead jobs "
                                "can be retried")
        return model_response(RetryResponse(message="Job queued for retry", job=job))

    @api
    def cancel(request: Request) -> Response:
        jid = parse_job_id(request.path_params["id"])
        in_body = parse_body_flag(request, "terminate")
        terminate = parse_flag(request, "terminate") or bool(in_body)
        done = jobs.cancel(jid, terminate=terminate)
        if done is None:
            raise ApiError(404, f"job {jid} not found")
        action, job = done
        message = _CANCEL_MESSAGES.get(action.value, f"Job already {job.status.value}")
        return model_response(CancelResponse(message=message, job=job))

    @guarded(metrics_token, admin_token, public=cfg.metrics_public)
    def metrics(request: Request) -> Response:
        return Response(render_metrics(registry),
                        media_type="text/plain; version=0.0.4; charset=utf-8")

    @api
    def openapi_json(request: Request) -> Response:
        return JSONResponse(openapi)

    dashboard_html = resources.files("boundary_celery.admin").joinpath(
        "static/dashboard.html").read_text(encoding="utf-8")

    def dashboard(request: Request) -> Response:
        return HTMLResponse(dashboard_html, headers={"Cache-Control": "no-cache"})

    def root(request: Request) -> Response:
        return RedirectResponse("/dashboard")

    def healthz(request: Request) -> Response:
        """Liveness: the process answers (no data, no auth)."""
        return JSONResponse({"status": "ok"})

    def readyz(request: Request) -> Response:
        """Readiness: the job store answers (no data, no auth); 503 when it does not."""
        try:
            jobs.store.ping()
        except redis.RedisError as exc:
            log.warning("admin: job store unavailable: %s", exc)
            return error_response(503, "job store unavailable")
        return JSONResponse({"status": "ok"})

    async def not_found(request: Request, exc: Exception) -> Response:
        if isinstance(exc, HTTPException):
            message = exc.detail if exc.status_code != 404 else (
                f"no route for {request.method} {request.url.path}")
            return error_response(exc.status_code, str(message), headers=exc.headers)
        return error_response(500, "internal error")

    routes = [
        Route("/", root, methods=["GET"], include_in_schema=False),
        Route("/dashboard", dashboard, methods=["GET"]),
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/openapi.json", openapi_json, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/api/admin/jobs/stats", stats, methods=["GET"]),
        Route("/api/admin/jobs/failed", failed, methods=["GET"]),
        Route("/api/admin/jobs/failed", purge_all, methods=["DELETE"]),
        Route("/api/admin/jobs/failed/{id}", purge_one, methods=["DELETE"]),
        Route("/api/admin/jobs/scheduled", scheduled, methods=["GET"]),
        Route("/api/admin/jobs/queues", queues, methods=["GET"]),
        Route("/api/admin/jobs/queues/{name:path}/size", queue_size, methods=["GET"]),
        Route("/api/admin/jobs/{id}", job_detail, methods=["GET"]),
        Route("/api/admin/jobs/{id}/retry", retry, methods=["POST"]),
        Route("/api/admin/jobs/{id}/cancel", cancel, methods=["POST"]),
    ]
    app = Starlette(routes=routes, exception_handlers={HTTPException: not_found})
    app.state.jobs = jobs
    app.state.openapi = openapi
    return app


def serve_admin(jobs: Jobs, host: str | None = None, port: int | None = None,
                settings: AdminSettings | None = None, **uvicorn_options: Any) -> None:
    """Run the admin app with uvicorn (blocks). Host/port default to ``[admin]`` settings.

    Raises :class:`InsecureBindError` for a non-loopback host without a token (unless
    ``insecure``)."""
    import uvicorn

    cfg = settings if settings is not None else jobs.settings.admin
    bind = host or cfg.host
    problem = bind_refusal(bind, token=cfg.token, insecure=cfg.insecure)
    if problem is not None:
        raise InsecureBindError(problem)
    uvicorn.run(
        create_admin_app(jobs, cfg),
        host=bind,
        port=port if port is not None else cfg.port,
        log_level=uvicorn_options.pop("log_level", "info"),
        **uvicorn_options,
    )
