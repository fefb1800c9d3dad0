"""``shell.clock``: aware UTC now and epoch milliseconds."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone

from boundary_celery.shell.clock import epoch_ms, utcnow


def test_utcnow_is_aware_utc_and_current():
    before = time.time()
    now = utcnow()
    after = time.time()
    assert now.tzinfo is not None
    assert now.utcoffset() == timedelta(0)
    assert now.tzinfo is UTC
    assert before - 0.001 <= now.timestamp() <= after + 0.001


def test_epoch_ms_of_known_moments():
    assert epoch_ms(datetime(1970, 1, 1, tzinfo=UTC)) == 0
    assert epoch_ms(datetime(2025, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)) == 1735732800123


def test_epoch_ms_is_independent_of_the_timezone():
    moment = datetime(2025, 6, 1, 8, 30, tzinfo=UTC)
    shifted = moment.astimezone(timezone(timedelta(hours=5, minutes=30)))
    assert epoch_ms(shifted) == epoch_ms(moment) == 1748766600000


def test_epoch_ms_matches_utcnow():
    now = utcnow()
    assert abs(epoch_ms(now) - time.time() * 1000) < 1000
    assert epoch_ms(now + timedelta(milliseconds=1500)) - epoch_ms(now) in (1499, 1500, 1501)
