"""Opening the store and bringing its schema up to date.

The URL decides the database: `sqlite:///path` for one machine, or
`postgresql+psycopg://…` when several broker processes share the state. The schema
is owned by Alembic; start-up runs the migrations, serialised by an advisory lock
on PostgreSQL so that replicas starting together do not race.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import structlog
from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.exc import OperationalError

from service.errors import ConfigurationError

log = structlog.get_logger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"
# An arbitrary constant that names "tokenbroker schema migration" among locks.
MIGRATION_LOCK_ID = 0x746F6B656E


def open_store(url: str) -> Engine:
    """An engine for `url`, its schema migrated to the newest revision.

    Raises ConfigurationError when the database cannot be reached.
    """
    engine = create_engine(url, **_engine_options(url))
    try:
        migrate(engine)
    except OperationalError as error:
        engine.dispose()
        raise ConfigurationError(
            f"store: cannot open {make_url(url).render_as_string(hide_password=True)}"
            f" ({type(error.orig).__name__})"
        ) from None
    return engine


def _engine_options(url: str) -> dict[str, Any]:
    if make_url(url).get_backend_name() != "sqlite":
        return {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 10}
    database = make_url(url).database
    if database and database != ":memory:":
        _create_private(Path(database))
    return {"connect_args": {"check_same_thread": False, "timeout": 30}}


def _create_private(database: Path) -> None:
    """Create the SQLite file readable by its owner only, whatever the umask.

    SQLite gives the `-wal` and `-shm` files it makes the database file's mode.
    """
    database.parent.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(database, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return
    os.close(descriptor)


def migrate(engine: Engine) -> None:
    """Run every Alembic migration not yet applied."""
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as connection:
        if engine.dialect.name == "postgresql":
            connection.execute(
                text("SELECT pg_advisory_xact_lock(:id)"), {"id": MIGRATION_LOCK_ID}
            )
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    log.debug("store_migrated", dialect=engine.dialect.name)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    # WAL lets readers go on while one writer commits; the broker reads far more
    # than it writes.
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()
