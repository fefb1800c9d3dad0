"""Fixtures shared by the settings tests."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from boundary_celery.settings import FLAT_ENV_VARS


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ambient settings: drop BOUNDARY_* and the guide's flat variables; run in tmp_path."""
    for name in list(os.environ):
        if name.upper().startswith("BOUNDARY_") or name in FLAT_ENV_VARS:
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
