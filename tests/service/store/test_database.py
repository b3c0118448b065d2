"""Opening the store: a SQLite file is its owner's alone, whatever the umask."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from service.store.database import open_store


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The umask most shells start with, 022, for the length of a test."""
    before = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(before)


@pytest.mark.usefixtures("usual_umask")
def test_a_new_sqlite_store_and_its_wal_files_are_readable_by_the_owner_only(
    tmp_path: Path,
) -> None:
    database = tmp_path / "state.db"
    engine = open_store(f"sqlite:///{database}")
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE probe (id INTEGER)"))
        with engine.connect() as connection:
            connection.execute(text("SELECT count(*) FROM probe"))
            files = [
                database,
                *(tmp_path / f"state.db-{end}" for end in ("wal", "shm")),
            ]
            modes = {path.name: stat.S_IMODE(path.stat().st_mode) for path in files}
    finally:
        engine.dispose()

    assert modes == {"state.db": 0o600, "state.db-wal": 0o600, "state.db-shm": 0o600}
