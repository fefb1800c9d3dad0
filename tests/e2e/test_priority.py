"""Strict priority across levels and queues, FIFO within a level, with a real worker."""

from __future__ import annotations

import random

from boundary_celery.core.priority import Priority
from boundary_celery.testing import wait_for

LEVELS = [p.value for p in Priority.ordered()]


def test_strict_priority_across_two_queues_fifo_within_level(sandbox, make_jobs, worker_factory):
    _, jobs = make_jobs()
    q1, q2 = sandbox.queue("a"), sandbox.queue("b")
    plan = [(level, i) for level in LEVELS for i in range(6)]
    random.Random(7).shuffle(plan)
    for seq, (level, i) in enumerate(plan):
        queue = q1 if i % 2 else q2
        jobs.enqueue("e2e.record", {"tag": f"{level}:{seq}:{queue}"}, priority=level,
                     queue=queue)
    assert jobs.queue_size(q1) + jobs.queue_size(q2) == len(plan)

    worker_factory([q1, q2], concurrency=1)
    r = sandbox.redis
    order = wait_for(lambda: (o := r.lrange(f"{sandbox.prefix}:order", 0, -1)) and
                     len(o) == len(plan) and o, timeout=30, message="all jobs run")

    levels_run = [tag.split(":")[0] for tag in order]
    assert levels_run == sorted(levels_run, key=LEVELS.index), levels_run
    # FIFO within each level of each queue (the lists of one level are read in turn)
    for level in LEVELS:
        for queue in (q1, q2):
            seqs = [int(t.split(":")[1]) for t in order if t.startswith(f"{level}:")
                    and t.endswith(f":{queue}")]
            assert len(seqs) == 3 and seqs == sorted(seqs), f"{level}/{queue}: {seqs}"
    stats = jobs.job_stats()
    assert stats.total_succeeded == len(plan)
    assert stats.total_processed == stats.total_succeeded + stats.total_failed


def test_celery_api_priority_names_and_ints(sandbox, make_jobs, worker_factory):
    app, jobs = make_jobs()
    q = sandbox.queue()
    # The publisher knows the job type (its handler runs only in the worker).
    def record(tag: str) -> str:
        return tag

    jobs.register_handler("e2e.record", record)
    task = app.tasks["e2e.record"]
    # Celery-style calls: level names and Celery integers (0 = most urgent on Redis)
    late = task.apply_async(kwargs={"tag": "bulk"}, queue=q, priority=9)
    early = task.apply_async(("critical",), queue=q, priority="critical")  # positional bound
    assert jobs.queue_sizes_by_priority(q) == {
        "critical": 1, "high": 0, "normal": 0, "low": 0, "bulk": 1}
    worker_factory([q])
    r = sandbox.redis
    order = wait_for(lambda: len(o := r.lrange(f"{sandbox.prefix}:order", 0, -1)) == 2 and o,
                     timeout=20)
    assert order == ["critical", "bulk"]
    assert jobs.find_job(early.id).priority is Priority.CRITICAL
    assert jobs.find_job(late.id).priority is Priority.BULK
