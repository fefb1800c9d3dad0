"""A malformed broker message never stops a worker (issue 10).

Each test pushes one malformed message straight onto the queue's Redis list while a real
worker (shipped defaults) runs a long job: the message is dead-lettered with the reason
and the raw message, the worker keeps its PID and goes on consuming (a later good job
runs), and the long job is not started a second time. The checks themselves are
``shell.envelope``'s (unit-tested in tests/unit/test_shell_envelope.py); the transport's
last net (tests/integration/test_transport_delivery.py) is never needed here.

One worker serves the module (started again only if a test stopped it), to keep the
suite fast; every test still checks that its message left the worker's PID unchanged.
"""

from __future__ import annotations

import base64
import json
import uuid
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from celery import Celery

import boundary_celery
from boundary_celery.adapters.redis_keys import list_key
from boundary_celery.core.job import JobStatus
from boundary_celery.core.priority import Priority
from boundary_celery.shell.jobs import Jobs
from boundary_celery.testing import Sandbox, WorkerProcess, wait_for
from tests.conftest import ROOT

pytestmark = pytest.mark.e2e

Mutation = Callable[[dict[str, Any]], Any]
LONG_S = 0.8


@dataclass
class Rig:
    sandbox: Sandbox
    jobs: Jobs
    queue: str
    template: dict[str, Any]
    worker: WorkerProcess | None = None

    def running_worker(self) -> WorkerProcess:
        if self.worker is None or not self.worker.running:
            self.worker = WorkerProcess("tests.e2e.jobs_app", self.sandbox.env(), [self.queue],
                                        concurrency=2, cwd=ROOT).start().wait_ready()
        return self.worker

    def status(self, job_id: str) -> JobStatus | None:
        job = self.jobs.find_job(job_id)
        return job.status if job else None


@pytest.fixture(scope="module")
def rig(redis_url: str) -> Iterator[Rig]:
    box = Sandbox(url=redis_url)
    app = Celery(f"malformed-{box.prefix}")
    jobs = boundary_celery.install(app, box.settings())
    # The template: a message exactly as a producer stores it, on a queue nobody reads.
    parked = box.queue("template")
    jobs.enqueue("e2e.record", {"tag": "template"}, queue=parked)
    r = box.redis
    key = list_key(parked, Priority.NORMAL.celery)
    template = json.loads(r.lindex(key, 0))
    r.delete(key)
    rig = Rig(box, jobs, box.queue("malformed"), template)
    rig.template["properties"]["delivery_info"]["routing_key"] = rig.queue
    rig.template["headers"]["boundary"]["q"] = rig.queue
    try:
        yield rig
    finally:
        if rig.worker is not None:
            rig.worker.stop()
        box.cleanup()


def b64(data: Any) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.b64encode(raw).decode()


def at(path: str, value: Any) -> Mutation:
    """Set (``...``: delete) the dotted ``path`` of the envelope."""
    *parents, last = path.split(".")

    def mutate(env: dict[str, Any]) -> dict[str, Any]:
        node = env
        for key in parents:
            node = node[key]
        if value is ...:
            del node[last]
        else:
            node[last] = value
        return env

    return mutate


def whole(raw: bytes) -> Mutation:
    """Replace the whole message with ``raw``."""
    return lambda env: raw


def compressed_with(compression: str) -> Mutation:
    def mutate(env: dict[str, Any]) -> dict[str, Any]:
        env["headers"]["compression"] = compression
        env["body"] = b64(zlib.compress(b"[[], {}, {}]"))
        return env

    return mutate


CASES: dict[str, tuple[Mutation, str]] = {
    # -- reported in issue 10 --------------------------------------------------------
    "boundary_header_is_a_string": (at("headers.boundary", "abc"),
                                    "headers.boundary: expected an object"),
    "boundary_header_rc_not_a_number": (at("headers.boundary", {"rc": "abc"}),
                                        "headers.boundary.rc: expected an integer >= 0"),
    "delivery_info_is_a_string": (at("properties.delivery_info", "q"),
                                  "properties.delivery_info: expected an object"),
    "delivery_info_without_exchange": (at("properties.delivery_info.exchange", ...),
                                       "properties.delivery_info.exchange"),
    "body_is_a_json_string": (at("body", b64("abc")),
                              "body: expected [args, kwargs, embed] (Celery protocol 2), "
                              "got a string"),
    # -- the envelope -----------------------------------------------------------------
    "not_utf8": (whole(b'{"body": "\xff\xfe"}'), "message is not UTF-8 text"),
    "not_json": (whole(b"this is not json"), "message is not JSON"),
    "nan_in_json": (whole(b'{"properties": NaN}'), "NaN is not JSON"),
    "json_array": (whole(b"[1, 2, 3]"), "not a JSON object (got an array)"),
    "json_string": (whole(b'"abc"'), "not a JSON object (got a string)"),
    "unknown_kombu_type": (at("headers.when", {"__type__": "nope", "__value__": 1}),
                           "message is not JSON"),
    "properties_missing": (at("properties", ...), "properties: expected an object"),
    "delivery_tag_missing": (at("properties.delivery_tag", ...), "properties.delivery_tag"),
    "delivery_tag_not_a_string": (at("properties.delivery_tag", 7),
                                  "properties.delivery_tag"),
    "delivery_info_missing": (at("properties.delivery_info", ...),
                              "properties.delivery_info: expected an object"),
    "routing_key_missing": (at("properties.delivery_info.routing_key", ...),
                            "properties.delivery_info.routing_key"),
    "priority_not_an_integer": (at("properties.priority", "high"), "properties.priority"),
    "priority_out_of_range": (at("properties.priority", 300), "properties.priority"),
    "body_encoding_unknown": (at("properties.body_encoding", "rot13"),
                              "properties.body_encoding"),
    "body_encoding_not_a_string": (at("properties.body_encoding", 64),
                                   "properties.body_encoding"),
    "content_type_pickle": (at("content-type", "application/x-python-serialize"),
                            "content-type: expected application/json"),
    "content_type_raw_data": (at("content-type", "application/data"), "content-type"),
    "content_encoding_not_a_string": (at("content-encoding", 8), "content-encoding"),
    # -- Celery's headers -------------------------------------------------------------
    "headers_not_an_object": (at("headers", ["task"]), "headers: expected an object"),
    "task_missing": (at("headers.task", ...), "headers.task: expected a task name"),
    "task_not_a_string": (at("headers.task", ["e2e.record"]), "headers.task"),
    "id_missing": (at("headers.id", ...), "headers.id: expected a string"),
    "id_not_a_uuid": (at("headers.id", "job-1"), "headers.id: expected a UUID"),
    "shadow_not_a_string": (at("headers.shadow", 5), "headers.shadow"),
    "retries_not_an_integer": (at("headers.retries", "1"), "headers.retries"),
    "retries_negative": (at("headers.retries", -1), "headers.retries"),
    "eta_not_a_time": (at("headers.eta", "tomorrow"), "headers.eta"),
    "eta_out_of_range": (at("headers.eta", "0001-01-01T00:00:00+14:00"), "headers.eta"),
    "expires_not_a_time": (at("headers.expires", 12), "headers.expires"),
    "timelimit_not_a_pair": (at("headers.timelimit", 5), "headers.timelimit"),
    "timelimit_not_seconds": (at("headers.timelimit", ["x", None]), "headers.timelimit"),
    "stamped_headers_not_a_list": (at("headers.stamped_headers", "a"),
                                   "headers.stamped_headers"),
    "stamps_not_an_object": (at("headers.stamps", []), "headers.stamps"),
    "compression_unknown": (compressed_with("application/x-bogus"), "body: cannot decompress"),
    "compression_not_a_string": (at("headers.compression", 1), "headers.compression"),
    "verdict_published": (at("headers.boundary_verdict", "ok"), "headers.boundary_verdict"),
    # -- the boundary header ----------------------------------------------------------
    "boundary_header_is_a_list": (at("headers.boundary", ["q"]), "headers.boundary:"),
    "boundary_max_retries_not_an_integer": (at("headers.boundary.mr", "abc"),
                                            "headers.boundary.mr"),
    "boundary_queue_not_a_string": (at("headers.boundary.q", 5), "headers.boundary.q"),
    "boundary_tenant_not_a_string": (at("headers.boundary.t", 5), "headers.boundary.t"),
    "boundary_metadata_not_an_object": (at("headers.boundary.m", "x"), "headers.boundary.m"),
    "boundary_retry_policy_invalid": (at("headers.boundary.rp", {"initial_delay_ms": "x"}),
                                      "headers.boundary.rp"),
    "boundary_no_handler_since_not_an_integer": (at("headers.boundary.nh", "x"),
                                                 "headers.boundary.nh"),
    "boundary_defaulted_not_a_list": (at("headers.boundary.d", "mr"), "headers.boundary.d"),
    "boundary_old_priority_unknown": (at("headers.boundary.p", "urgent"),
                                      "headers.boundary.p"),
    # -- the body ---------------------------------------------------------------------
    "body_missing": (at("body", ...), "body: expected a string"),
    "body_not_a_string": (at("body", [[], {}, {}]), "body: expected a string"),
    "body_empty": (at("body", ""), "body: not JSON"),
    "body_not_base64": (at("body", "!!! not base64 !!!"), "body: not base64"),
    "body_not_json": (at("body", b64(b"not json")), "body: not JSON"),
    "body_nan": (at("body", b64(b"[[NaN], {}, {}]")), "body: not JSON"),
    "body_three_characters": (at("body", b64("xyz")), "got a string"),
    "body_an_object": (at("body", b64({"args": [], "kwargs": {}})), "got an object"),
    "body_two_elements": (at("body", b64([[], {}])), "got an array of 2"),
    "body_args_not_a_list": (at("body", b64([{}, {}, {}])), "body: args"),
    "body_kwargs_not_an_object": (at("body", b64([[], [], {}])), "body: kwargs"),
    "body_embed_not_an_object": (at("body", b64([[], {}, []])), "body: embed"),
    "body_callbacks_not_a_list": (at("body", b64([[], {}, {"callbacks": "x"}])),
                                  "body: embed.callbacks"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_malformed_message_is_dead_lettered_and_the_worker_keeps_running(rig: Rig, case: str):
    mutate, reason = CASES[case]
    jobs, r, q = rig.jobs, rig.sandbox.redis, rig.queue
    worker = rig.running_worker()
    pid = worker.proc.pid if worker.proc else None
    log_start = len(worker.log_text())

    key = uuid.uuid4().hex[:8]
    long = jobs.enqueue("e2e.slow", {"key": key, "seconds": LONG_S}, queue=q)
    started = f"{rig.sandbox.prefix}:started:{key}"
    wait_for(lambda: r.llen(started) == 1, timeout=10, message="the long job started")

    env = json.loads(json.dumps(rig.template))
    env["headers"]["id"] = str(uuid.uuid4())
    env["properties"]["delivery_tag"] = str(uuid.uuid4())
    raw = mutate(env)
    raw = raw if isinstance(raw, bytes) else json.dumps(raw).encode()
    r.lpush(list_key(q, Priority.NORMAL.celery), raw)
    # Announced as enqueue.lua does, so the idle consumer claims it at once (a push
    # nobody announces is claimed within brpop_timeout, after the long job).
    jobs.store.deliveries.wake(r)

    kept = raw.decode("utf-8", "backslashreplace")
    dead = wait_for(lambda: next((j for j in jobs.failed_jobs(10)
                                  if j.metadata.get("raw") == kept), None),
                    timeout=10, message="the malformed message is dead-lettered")
    assert r.llen(f"{rig.sandbox.prefix}:done:{key}") == 0, "received while a job runs"
    assert dead.error.type == "PoisonMessageError"
    assert dead.error.message.startswith("undeliverable broker message: ")
    assert reason in dead.error.message, dead.error.message
    assert dead.queue == q

    good = jobs.enqueue("e2e.record", {"tag": f"after-{case}"}, queue=q)
    wait_for(lambda: rig.status(good) is JobStatus.COMPLETED, timeout=10,
             message="a later good job runs")
    wait_for(lambda: rig.status(long) is JobStatus.COMPLETED, timeout=10,
             message="the long job completes")
    assert r.llen(started) == 1, "the long job was started a second time"
    assert jobs.store.record(long)["attempts"] == "1"

    assert worker.running and worker.proc is not None and worker.proc.pid == pid
    log = worker.log_text()[log_start:]
    assert "Unrecoverable error" not in log
    assert "Delivering a message failed" not in log  # the checks caught it, not the net


def test_unknown_job_type_that_cannot_be_rescheduled_is_dead_lettered_once(rig: Rig):
    """A message the envelope checks accept, for a job type no worker has, with a header
    kombu decodes to a datetime: re-scheduling it cannot serialize it, so the consumer
    dead-letters it (it used to requeue it, to fail again at once, forever)."""
    jobs, r, q = rig.jobs, rig.sandbox.redis, rig.queue
    worker = rig.running_worker()
    pid = worker.proc.pid if worker.proc else None
    log_start = len(worker.log_text())
    env = json.loads(json.dumps(rig.template))
    job_id = env["headers"]["id"] = str(uuid.uuid4())
    env["properties"]["delivery_tag"] = str(uuid.uuid4())
    env["headers"]["task"] = "e2e.not_deployed"
    env["headers"]["when"] = {"__type__": "datetime", "__value__": "2030-01-02T03:04:05"}
    r.lpush(list_key(q, Priority.NORMAL.celery), json.dumps(env))

    dead = wait_for(lambda: next((j for j in jobs.failed_jobs(10) if str(j.id) == job_id),
                                 None), timeout=10, message="dead-lettered")
    assert dead.error.type == "PoisonMessageError"
    assert "re-scheduling the message failed" in dead.error.message
    assert dead.job_type == "e2e.not_deployed"
    good = jobs.enqueue("e2e.record", {"tag": "after-unknown"}, queue=q)
    wait_for(lambda: rig.status(good) is JobStatus.COMPLETED, timeout=10)
    assert all(r.llen(list_key(q, p.celery)) == 0 for p in Priority)  # not requeued
    assert worker.log_text()[log_start:].count("could not re-schedule a message") == 1
    assert worker.running and worker.proc is not None and worker.proc.pid == pid
