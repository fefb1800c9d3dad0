"""A project's own task base, combined with :class:`BoundaryTask` so every task is a job.

A project sets its base the ways Celery allows: ``Celery(task_cls=X)``, ``app.Task = X``
(Flask's Celery guide, Flask-CeleryExt), ``@app.task(base=X)`` or ``shared_task(base=X)``.
:func:`boundary_base` turns ``X`` into a class deriving from BoundaryTask first and ``X``
next: BoundaryTask's ``__call__`` records the job and calls ``X``'s own ``__call__`` around
the body (``execution._invoke``), and ``X``'s other methods (``on_failure``,
``after_return``, ...) are inherited and run as Celery runs them. A base that cannot be
combined is refused with :class:`TaskBaseConflict`, naming the class.
"""

from __future__ import annotations

import types
from typing import Any

from celery import Task
from kombu.utils.imports import symbol_by_name

from boundary_celery.shell.conf_policy import ConfigConflict
from boundary_celery.shell.task import BoundaryTask

#: The combined class of each project base (one per base, so tasks share it).
_COMBINED: dict[type, type[BoundaryTask]] = {}


class TaskBaseConflict(ConfigConflict):
    """A task base that cannot be combined with BoundaryTask; ``setting`` says where it
    was set (``task_cls``, ``app.Task`` or ``base``)."""


def boundary_base(base: Any, setting: str = "base") -> type[BoundaryTask]:
    """``base`` (a class or its ``module:name``) when it derives from BoundaryTask, else
    the class deriving from BoundaryTask and ``base``, in that order.

    Raises :class:`TaskBaseConflict` when ``base`` is not a ``celery.Task`` subclass or the
    two classes cannot be combined (e.g. its ``__init_subclass__`` or metaclass refuses).
    """
    cls = symbol_by_name(base) if isinstance(base, str) else base
    if not isinstance(cls, type) or not issubclass(cls, Task):
        raise TaskBaseConflict(setting, cls, "a task base must be a celery.Task subclass "
                                             "(boundary-celery combines it with BoundaryTask)")
    if issubclass(cls, BoundaryTask):
        return cls
    combined = _COMBINED.get(cls)
    if combined is None:
        attrs = {"abstract": True, "__module__": cls.__module__, "boundary_base": cls,
                 "__qualname__": f"Boundary{cls.__qualname__}"}
        try:
            combined = types.new_class(f"Boundary{cls.__name__}", (BoundaryTask, cls),
                                       exec_body=lambda ns: ns.update(attrs))
        except TypeError as exc:
            raise TaskBaseConflict(setting, cls, f"cannot be combined with BoundaryTask "
                                                 f"({exc}); derive it from BoundaryTask "
                                                 "instead") from exc
        _COMBINED[cls] = combined
    return combined


def project_base(cls: type) -> type | None:
    """The project's own class in ``cls``'s bases: the class it was combined from, or the
    first class of its MRO that is neither a task made by Celery nor one of ours."""
    for klass in cls.__mro__:
        if "boundary_base" in klass.__dict__:
            return klass.__dict__["boundary_base"]  # type: ignore[no-any-return]
        if klass in (BoundaryTask, Task, object):
            return None
        made_by_celery = "_decorated" in klass.__dict__ or (
            klass.__name__ == "Task" and "_app" in klass.__dict__)  # app.subclass_with_self
        if not made_by_celery:
            return klass
    return None


def describe(cls: type) -> str:
    """``ContextTask + BoundaryTask``, ``BoundaryTask``, or a subclass's own name."""
    own = project_base(cls)
    if own is None:
        return "BoundaryTask"
    if issubclass(own, BoundaryTask):
        return f"{own.__name__} (derives from BoundaryTask)"
    return f"{own.__name__} + BoundaryTask"
