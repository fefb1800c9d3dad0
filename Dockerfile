# Image for the worker, scheduler, admin and flower services of docker-compose.yml.
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONPATH=/app \
    BOUNDARY_ENV=prod

WORKDIR /app
COPY . .
RUN pip install '.[flower,hiredis]' \
    && useradd --create-home --uid 10001 app
USER app

# examples/ and config/ stay in /app: `celery -A examples.app` imports from here, and
# load_settings() reads config/$BOUNDARY_ENV.toml relative to this directory.
CMD ["celery", "-A", "examples.app", "worker", "-l", "info"]
