"""A Celery project in the shape of Celery's examples/next-steps/proj, on Redis.

Its only change for boundary-celery is the ``install(app)`` line.
"""

import os

from celery import Celery

import boundary_celery

REDIS_URL = os.environ.get("REDIS_URL", "redis://localhost:6379/0")

app = Celery("proj", broker=REDIS_URL, backend=REDIS_URL, include=["proj.tasks"])

# Optional configuration, see the application user guide.
app.conf.update(result_expires=3600)
# The tests give each run its own default queue (Celery's "celery" otherwise), as they
# give it its own key prefix: two runs on one Redis never take each other's messages.
app.conf.task_default_queue = os.environ.get("PROJ_QUEUE", "celery")

boundary_celery.install(app)

if __name__ == "__main__":
    app.start()
