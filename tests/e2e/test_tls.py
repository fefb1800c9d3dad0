"""TLS and ACL users against a real TLS-only redis-server (issue #11, part 2).

A private ``redis-server`` listens on a loopback TLS port only (``--port 0``), asks every
client for a certificate (``--tls-auth-clients yes``), and has its ``default`` user
switched off: everything below goes through the ACL user ``app`` in the URL
``rediss://app:secret@127.0.0.1:PORT/0``, with the CA and the client certificate from the
``[redis] tls_*`` settings. A throwaway CA, server and client certificates are made with
the ``openssl`` CLI. Checked: the job store (enqueue and read; the Lua scripts as that
user), a real ``celery worker`` subprocess running jobs end to end (claim, complete, dead
letter, scheduler), a wrong CA and a wrong password (clear errors, within the timeout).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

import boundary_celery
from boundary_celery.core import JobStatus
from boundary_celery.core.errors import BrokerUnavailableError
from boundary_celery.redis_server import RedisServer, find_redis_server
from boundary_celery.settings import BoundarySettings, RedisSettings, load_settings
from boundary_celery.shell.clock import utcnow
from boundary_celery.shell.jobs import Jobs
from boundary_celery.testing import WorkerProcess, wait_for
from tests.conftest import ROOT

USER, PASSWORD = "app", "s3cret-Pass"
#: The shipped ``[redis] timeout_ms``: an error must come within about it (3 x, the
#: publish path's bound).
TIMEOUT_MS = int(RedisSettings.model_fields["timeout_ms"].default)

pytestmark = pytest.mark.skipif(
    shutil.which("openssl") is None or find_redis_server(honor_env=False) is None,
    reason="needs the openssl CLI and a redis-server binary")


# --------------------------------------------------------------------------- certificates


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, timeout=30,
                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _ca(name: str, cwd: Path) -> None:
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
             "-keyout", f"{name}.key", "-out", f"{name}.crt", "-subj", f"/CN={name}", cwd=cwd)


def _signed(name: str, ca: str, ext: str, cwd: Path) -> None:
    (cwd / f"{name}.ext").write_text(ext + "\n")
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key",
             "-out", f"{name}.csr", "-subj", f"/CN={name}", cwd=cwd)
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", f"{ca}.crt", "-CAkey", f"{ca}.key",
             "-CAcreateserial", "-days", "1", "-out", f"{name}.crt",
             "-extfile", f"{name}.ext", cwd=cwd)


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """ca (trusted), other-ca (not), server (127.0.0.1, localhost) and client certificates."""
    cwd = tmp_path_factory.mktemp("tls")
    _ca("ca", cwd)
    _ca("other-ca", cwd)
    _signed("server", "ca", "subjectAltName=IP:127.0.0.1,DNS:localhost\n"
            "extendedKeyUsage=serverAuth", cwd)
    _signed("client", "ca", "extendedKeyUsage=clientAuth", cwd)
    return cwd


# --------------------------------------------------------------------------- the server


class TlsRedisServer(RedisServer):
    """A :class:`RedisServer` listening on a TLS port only, asking for client certificates.

    :meth:`RedisServer.start` picks the port and waits for our process to answer; here it
    answers over TLS (with the client certificate, as the ``default`` user until
    :meth:`add_acl_user` switches that one off)."""

    def __init__(self, certs: Path) -> None:
        super().__init__(workdir_prefix="boundary-redis-tls-")
        self.certs = certs
        self.default_user = True

    def command(self, port: int) -> list[str]:
        c = self.certs
        return [*super().command(0),  # --port 0: no plain TCP port
                "--tls-port", str(port), "--tls-cert-file", str(c / "server.crt"),
                "--tls-key-file", str(c / "server.key"),
                "--tls-ca-cert-file", str(c / "ca.crt"), "--tls-auth-clients", "yes"]

    @property
    def url(self) -> str:
        auth = "" if self.default_user else f"{USER}:{PASSWORD}@"
        return f"rediss://{auth}127.0.0.1:{self.port}/0"

    def client(self, **kwargs: Any) -> redis.Redis:
        c = self.certs
        return redis.Redis.from_url(
            self.url, ssl_ca_certs=str(c / "ca.crt"), ssl_certfile=str(c / "client.crt"),
            ssl_keyfile=str(c / "client.key"), **kwargs)

    def add_acl_user(self) -> None:
        """``app`` with a password and every right; ``default`` switched off."""
        client = self.client(socket_timeout=5)
        try:
            client.execute_command("ACL", "SETUSER", USER, "on", f">{PASSWORD}",
                                   "~*", "&*", "+@all")
            client.execute_command("ACL", "SETUSER", "default", "off")
        finally:
            client.close()
        self.default_user = False


@pytest.fixture(scope="module")
def tls_redis(certs: Path) -> Iterator[TlsRedisServer]:
    server = TlsRedisServer(certs)
    try:
        server.start()
        server.add_acl_user()
        yield server
    finally:
        server.stop()


def tls_settings(server: TlsRedisServer, prefix: str, *, url: str | None = None,
                 ca: str = "ca.crt") -> dict[str, Any]:
    """``[redis]`` and ``[store]`` settings for the TLS server (nested overrides)."""
    c = server.certs
    return {
        "redis": {"url": url or server.url,
                  "tls_ca_file": str(c / ca), "tls_cert_file": str(c / "client.crt"),
                  "tls_key_file": str(c / "client.key")},
        "store": {"key_prefix": prefix},
    }


def install(settings: BoundarySettings) -> tuple[Celery, Jobs]:
    app = Celery(f"tls-{uuid.uuid4().hex[:6]}")
    return app, boundary_celery.install(app, settings)


@pytest.fixture
def prefix() -> str:
    return f"bt{uuid.uuid4().hex[:10]}"


# --------------------------------------------------------------------------- tests


def test_the_server_takes_tls_with_a_client_certificate_only(tls_redis: TlsRedisServer):
    """The fixture is what it claims: no plain port, no certificate-less client, no
    ``default`` user."""
    bare = redis.Redis.from_url(tls_redis.url, ssl_ca_certs=str(tls_redis.certs / "ca.crt"),
                                socket_timeout=2)
    with pytest.raises(redis.ConnectionError):
        bare.ping()
    bare.close()
    anonymous = redis.Redis.from_url(tls_redis.url.replace(f"{USER}:{PASSWORD}@", ""),
                                     ssl_ca_certs=str(tls_redis.certs / "ca.crt"),
                                     ssl_certfile=str(tls_redis.certs / "client.crt"),
                                     ssl_keyfile=str(tls_redis.certs / "client.key"))
    with pytest.raises(redis.AuthenticationError):
        anonymous.ping()  # default is off: no AUTH means no commands
    anonymous.close()
    client = tls_redis.client(decode_responses=True)
    assert client.acl_whoami() == USER
    client.close()


def test_store_from_env_settings_enqueues_and_reads_a_job(
        tls_redis: TlsRedisServer, prefix: str, monkeypatch: pytest.MonkeyPatch):
    for name in list(os.environ):
        if name.startswith("BOUNDARY_"):
            monkeypatch.delenv(name)
    c = tls_redis.certs
    monkeypatch.setenv("REDIS_URL", tls_redis.url)
    monkeypatch.setenv("BOUNDARY_REDIS__TLS_CA_FILE", str(c / "ca.crt"))
    monkeypatch.setenv("BOUNDARY_REDIS__TLS_CERT_FILE", str(c / "client.crt"))
    monkeypatch.setenv("BOUNDARY_REDIS__TLS_KEY_FILE", str(c / "client.key"))
    monkeypatch.setenv("BOUNDARY_STORE__KEY_PREFIX", prefix)
    app, jobs = install(load_settings(env="none-such-env-file"))
    try:
        q = f"{prefix}-q"
        job_id = jobs.enqueue("e2e.whoami", args={}, queue=q, priority="high",
                              metadata={"via": "tls"})  # the publish Lua, as user app
        job = jobs.find_job(job_id)
        assert job is not None and job.status is JobStatus.PENDING
        assert job.metadata == {"via": "tls"}
        assert jobs.queue_size(q) == 1
        jobs.store.ping()  # as user app: the default user is off
        when = utcnow() + timedelta(hours=1)
        later = jobs.schedule("e2e.whoami", args={}, queue=q, execute_at=when)
        assert jobs.find_job(later).status is JobStatus.SCHEDULED
        assert jobs.cancel_job(later)  # the cancel script
        assert jobs.find_job(later).status is JobStatus.CANCELLED
        assert jobs.job_stats() is not None
    finally:
        jobs.store.close()
        app.close()


def test_a_worker_runs_jobs_over_tls_end_to_end(tls_redis: TlsRedisServer, prefix: str):
    settings = BoundarySettings(**tls_settings(tls_redis, prefix))
    app, jobs = install(settings)
    q = f"{prefix}-q"
    c = tls_redis.certs
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOUNDARY_")}
    env.update(REDIS_URL=tls_redis.url, BOUNDARY_STORE__KEY_PREFIX=prefix,
               BOUNDARY_REDIS__TLS_CA_FILE=str(c / "ca.crt"),
               BOUNDARY_REDIS__TLS_CERT_FILE=str(c / "client.crt"),
               BOUNDARY_REDIS__TLS_KEY_FILE=str(c / "client.key"),
               BOUNDARY_SCHEDULER__INTERVAL_MS="200", PYTHONUNBUFFERED="1")
    worker = WorkerProcess("tests.e2e.jobs_app", env, [q], concurrency=1, cwd=ROOT)
    try:
        worker.start().wait_ready(timeout=30)
        done = jobs.enqueue("e2e.whoami", args={}, queue=q, metadata={"via": "tls"})
        failed = jobs.enqueue("e2e.fail_shape", args={}, queue=q)
        later = jobs.schedule("e2e.whoami", args={}, queue=q,
                              execute_at=utcnow() + timedelta(seconds=1))
        for job_id in (done, later):
            job = wait_for(lambda j=job_id: (x := jobs.find_job(j)) is not None
                           and x.status is JobStatus.COMPLETED and x, timeout=20,
                           message=f"{job_id} completes over TLS")
            assert job.result["job_id"] == job_id
        assert jobs.find_job(done).result["metadata"] == {"via": "tls"}
        dead = wait_for(lambda: (x := jobs.find_job(failed)) is not None
                        and x.status is JobStatus.FAILED and x, timeout=20,
                        message="the failing job is dead-lettered")
        assert dead.error is not None and "Payment gateway" in str(dead.error)
        assert [str(j.id) for j in jobs.failed_jobs(10)] == [str(failed)]
        stats = jobs.queue_stats(q)
        assert stats.succeeded_total == 2
        assert "Connected to rediss://app:**@127.0.0.1" in worker.log_text()
    except AssertionError:
        print(worker.log_text()[-4000:])
        raise
    finally:
        worker.stop()
        jobs.store.close()
        app.close()


@pytest.mark.parametrize(("wrong", "error", "reason"), [
    ("ca", redis.ConnectionError, "certificate verify failed"),
    ("password", redis.AuthenticationError, "invalid username-password"),
])
def test_a_wrong_ca_or_acl_password_is_a_clear_error_within_the_timeout(
        tls_redis: TlsRedisServer, prefix: str, wrong: str, error: type[Exception],
        reason: str):
    if wrong == "ca":
        overrides = tls_settings(tls_redis, prefix, ca="other-ca.crt")
    else:
        overrides = tls_settings(tls_redis, prefix, url=tls_redis.url.replace(
            f":{PASSWORD}@", ":not-the-password@"))
    app, jobs = install(BoundarySettings(**overrides))
    try:
        started = time.monotonic()
        with pytest.raises(error, match=reason):
            jobs.store.ping()
        with pytest.raises(BrokerUnavailableError, match=reason):
            jobs.enqueue("e2e.whoami", args={}, queue=f"{prefix}-q")
        assert time.monotonic() - started < 3 * TIMEOUT_MS / 1000
    finally:
        jobs.store.close()
        app.close()


def test_a_missing_certificate_file_is_a_settings_error_naming_the_field(
        tls_redis: TlsRedisServer, prefix: str, tmp_path: Path):
    overrides = tls_settings(tls_redis, prefix)
    overrides["redis"]["tls_cert_file"] = str(tmp_path / "gone.crt")
    with pytest.raises(Exception, match=r"redis\.tls_cert_file: .*file not found"):
        load_settings(env="none-such-env-file", **overrides)
