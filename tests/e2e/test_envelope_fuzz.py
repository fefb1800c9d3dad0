"""Fuzzing one real worker with a few thousand broker messages (issue 10).

Hypothesis generates mutations of a real Celery protocol 2 message (fields dropped,
retyped or garbled, the boundary header and the body reshaped, random JSON, bytes that
are not JSON), all generated first (derandomized: the same messages on every run), then
pushed in batches onto the queue's Redis list while the worker runs a long job. The
worker never exits, never starts the long job again, runs every message the envelope
checks accept exactly once and dead-letters every other one: run + dead-lettered ==
pushed.

The mutations keep to what a message decides on its own: no future ETA, no unknown task
name (re-scheduled for a grace window), no arguments the handler refuses, no unknown
tenant (the app's tenant hook fails those jobs, as it should).
"""

from __future__ import annotations

import base64
import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from boundary_celery.adapters.redis_keys import list_key
from boundary_celery.core.job import JobStatus
from boundary_celery.core.priority import Priority
from boundary_celery.shell.envelope import envelope_problem
from boundary_celery.testing import wait_for

pytestmark = pytest.mark.e2e

EXAMPLES = 4000
BATCH = 250

#: Header keys whose meaning the mutations must not stumble on by chance.
_NAMED = {"task", "id", "shadow", "eta", "expires", "retries", "timelimit", "compression",
          "stamped_headers", "stamps", "boundary", "boundary_verdict", "group",
          "group_index", "root_id", "parent_id", "ignore_result", "argsrepr", "kwargsrepr"}

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)
DROP = st.just(...)


def not_a(*kinds: type) -> st.SearchStrategy[Any]:
    """A JSON value of none of ``kinds`` (bool counts as its own kind)."""
    def other(value: Any) -> bool:
        if isinstance(value, bool):
            return bool not in kinds
        return not isinstance(value, kinds)

    return json_values.filter(other)


def valid_body(value: Any) -> bool:
    return (isinstance(value, list) and len(value) == 3 and isinstance(value[0], list)
            and isinstance(value[1], dict) and isinstance(value[2], dict))


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


#: (dotted path, values it may take; ``...`` drops the field)
FIELDS: list[tuple[str, st.SearchStrategy[Any]]] = [
    ("headers.x-fuzz", json_values),  # first: hypothesis favours it, and it is harmless
    ("properties", DROP | not_a(dict)),
    ("properties.delivery_tag", DROP | json_values),
    ("properties.delivery_info", DROP | not_a(dict)),
    ("properties.delivery_info.exchange", DROP | json_values),
    ("properties.delivery_info.routing_key", DROP | json_values),
    ("properties.priority", DROP | st.integers(-3, 300) | json_values),
    ("properties.body_encoding", DROP | st.sampled_from(
        ["base64", "utf-8", "rot13", "BASE64", 64, None, ""])),
    ("content-type", DROP | st.sampled_from(
        ["application/json", "application/x-python-serialize", "application/data",
         "text/plain", 5, None])),
    ("content-encoding", DROP | json_values),
    ("headers", DROP | not_a(dict)),
    ("headers.task", DROP | not_a(str) | st.sampled_from(["", " "])),
    ("headers.id", DROP | json_values),
    ("headers.shadow", DROP | json_values),
    ("headers.retries", DROP | st.sampled_from([0, -1, "1", None, 1.5, True, [0]])),
    ("headers.eta", DROP | st.sampled_from(
        [None, "", "tomorrow", 5, [], "2000-01-01T00:00:00", "0001-01-01T00:00:00+14:00"])),
    ("headers.expires", DROP | st.sampled_from(
        [None, "", "soon", 12, "2999-01-01T00:00:00+00:00"])),
    ("headers.timelimit", DROP | st.sampled_from(
        [None, [None, None], [300, 200], 5, "5", [5], ["x", None], [-1, None], [],
         [True, None]])),
    ("headers.stamped_headers", DROP | st.sampled_from([None, [], ["a"], "a", [1]])),
    ("headers.stamps", DROP | st.sampled_from([None, {}, [], "x"])),
    ("headers.compression", st.sampled_from([None, "zlib", 1, "bogus"])),
    ("headers.boundary_verdict", st.sampled_from(["ok", "completed"])),
    ("headers.boundary", DROP | not_a(dict) | st.just({})),
    ("headers.boundary.q", DROP | json_values),
    ("headers.boundary.mr", DROP | st.integers(-3, 30) | json_values),
    ("headers.boundary.t", DROP | st.sampled_from([None, "acme", "globex", 5, [], "", " "])),
    ("headers.boundary.m", DROP | json_values),
    ("headers.boundary.rp", DROP | st.sampled_from(
        [None, {}, {"initial_delay_ms": 5}, "fast", {"initial_delay_ms": "x"}, {"bogus": 1},
         {"backoff_strategy": "schedule"}])),
    ("headers.boundary.nh", DROP | st.integers(-5, 10**13) | json_values),
    ("headers.boundary.d", DROP | st.sampled_from([[], ["mr"], ["rp", "mr"], "mr", [1]])),
    ("headers.boundary.p", st.sampled_from(["high", "urgent", 3, None, [], 12])),
    ("body", DROP | not_a(str) | st.text(max_size=20)
     | st.binary(max_size=20).map(b64)
     | json_values.filter(lambda v: not valid_body(v)).map(
         lambda v: b64(json.dumps(v).encode()))),
]
EXTRA_KEY = st.text(max_size=6).map(lambda k: f"x-fuzz-{k}")


@st.composite
def mutations(draw: st.DrawFn) -> tuple[str, Any]:
    """One way to spoil (or keep valid) a message: a whole replacement, a cut, a
    non-JSON constant, or 1-3 field edits."""
    kind = draw(st.sampled_from(["bytes", "json", "cut", "constant", "valid",
                                 *["edits"] * 7]))
    if kind == "bytes":
        return ("bytes", draw(st.binary(max_size=40)))
    if kind == "json":
        return ("json", draw(json_values))
    if kind == "cut":  # the message cut short (a fraction of its length)
        return ("cut", draw(st.floats(0, 0.999)))
    if kind == "constant":
        return ("constant", draw(st.sampled_from(["NaN", "Infinity", "-Infinity"])))
    if kind == "valid":  # unknown headers and header fields are tolerated
        where = draw(st.sampled_from(["headers", "headers.boundary"]))
        return ("edits", [(f"{where}.{draw(EXTRA_KEY)}", draw(json_values))])
    edits = []
    for _ in range(draw(st.integers(1, 3))):
        name, values = draw(st.sampled_from(FIELDS))
        edits.append((name, draw(values)))
    return ("edits", edits)


def generate(count: int) -> list[tuple[str, Any]]:
    """``count`` mutations, the same on every run (derandomized, no example database)."""
    found: list[tuple[str, Any]] = []

    @settings(max_examples=count, derandomize=True, database=None, deadline=None,
              phases=[Phase.generate], suppress_health_check=list(HealthCheck))
    @given(mutations())
    def collect(mutation: tuple[str, Any]) -> None:
        found.append(mutation)

    collect()
    return found


def apply(template: dict[str, Any], mutation: tuple[str, Any], n: int) -> bytes:
    """The raw message: the template with a fresh id, delivery tag and tag argument, then
    the mutation (an edit under a field an earlier edit removed is skipped)."""
    kind, value = mutation
    if kind == "bytes":
        return bytes(value)
    if kind == "json":
        return json.dumps(value).encode()
    env = json.loads(json.dumps(template))
    env["headers"]["id"] = str(uuid.uuid4())
    env["properties"]["delivery_tag"] = str(uuid.uuid4())
    env["body"] = b64(json.dumps([[], {"tag": f"fuzz-{n}"}, {}]).encode())
    if kind == "cut":
        raw = json.dumps(env).encode()
        return raw[:int(len(raw) * value)]
    if kind == "constant":
        env["properties"]["priority"] = "PRIORITY"
        return json.dumps(env).replace('"PRIORITY"', value).encode()
    for path, new in value:
        *parents, last = path.split(".")
        node: Any = env
        for key in parents:
            node = node.get(key) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            continue
        if new is ...:
            node.pop(last, None)
        else:
            node[last] = new
    return json.dumps(env).encode()


def test_a_worker_survives_thousands_of_mutated_messages(sandbox, make_jobs, worker_factory):
    _, jobs = make_jobs()
    r = sandbox.redis
    # the template: a message exactly as a producer stores it
    q = sandbox.queue()
    jobs.enqueue("e2e.record", {"tag": "template"}, queue=q)
    key = list_key(q, Priority.NORMAL.celery)
    template = json.loads(r.lindex(key, 0))
    r.delete(key)

    raws = [apply(template, m, n) for n, m in enumerate(generate(EXAMPLES))]
    valid = [raw for raw in raws if envelope_problem(raw) is None]
    assert len(raws) >= EXAMPLES * 0.9
    assert 0.1 * len(raws) < len(valid) < 0.9 * len(raws)  # both kinds well represented

    worker = worker_factory([q], concurrency=4)
    pid = worker.proc.pid if worker.proc else None
    long = jobs.enqueue("e2e.slow", {"key": "long", "seconds": 3}, queue=q)
    started = f"{sandbox.prefix}:started:long"
    wait_for(lambda: r.llen(started) == 1, timeout=10, message="the long job started")

    for start in range(0, len(raws), BATCH):
        r.lpush(key, *raws[start:start + BATCH])

    order = f"{sandbox.prefix}:order"

    def settled() -> bool:
        assert worker.running, f"the worker exited:\n{worker.log_text()[-3000:]}"
        return r.llen(order) + jobs.dlq_size() >= len(raws)

    wait_for(settled, timeout=45, interval=0.25,
             message=f"{len(raws)} messages run or dead-lettered")
    wait_for(lambda: (job := jobs.find_job(long)) is not None
             and job.status is JobStatus.COMPLETED, timeout=10, message="the long job ends")

    ran = r.lrange(order, 0, -1)
    assert len(ran) == len(set(ran)), "a message ran twice"
    assert len(ran) == len(valid)
    assert jobs.dlq_size() == len(raws) - len(valid)
    assert r.llen(started) == 1, "the long job was started a second time"
    assert worker.running and worker.proc is not None and worker.proc.pid == pid
    log = worker.log_text()
    assert "Unrecoverable error" not in log
    assert "Delivering a message failed" not in log  # the envelope checks caught them all
