"""The database: engine, schema, schema version, and the group-commit writer.

SQLite (one file, WAL, ``synchronous=FULL``) by default; PostgreSQL for several replicas. The
code is the same for both except where noted (`is_postgres`).

Writes go through one writer thread per process. The writer takes every write waiting at that
moment and runs them all in one transaction, so N concurrent webhook requests cost one fsync,
not N ("group commit"). A write is either a function of a connection (`submit`), or one item
for a *batch operation* (`submit_item`): a function that takes a connection and the list of
all items of that kind in the group, and does them in a few set-based statements (one lookup,
one executemany) instead of N round trips. If a group fails, each of its writes is retried
alone, so one bad write cannot fail its neighbours. Reads use the pool.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

__all__ = [
    "SCHEMA_VERSION",
    "BatchOp",
    "BulkStatement",
    "Database",
    "SchemaTooNew",
    "attempts",
    "audit_log",
    "automation_state",
    "commit_schedulers",
    "commit_uploads",
    "deliveries",
    "jobs",
    "metadata",
    "touched_resources",
]

log = logging.getLogger("spacehooks.db")
T = TypeVar("T")

#: A batch operation: does every item of a group in one go, returns one result per item.
BatchOp = Callable[[Connection, list[Any]], list[Any]]
_Entry = tuple["BatchOp | None", Any, concurrent.futures.Future[Any]]

SCHEMA_VERSION = 1
_MAX_BATCH = 256

metadata = sa.MetaData()

meta = sa.Table(
    "spacehooks_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(255), nullable=False),
)

deliveries = sa.Table(
    "deliveries",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("endpoint", sa.String(255), nullable=False),
    sa.Column("received_at", sa.Float, nullable=False),
    sa.Column("headers", sa.Text, nullable=False),  # JSON, secrets removed
    sa.Column("query", sa.Text, nullable=False),  # query string, secret removed
    sa.Column("body", sa.LargeBinary, nullable=False),
    sa.Column("idempotency_key", sa.String(128), nullable=False),
    sa.Column("scope", sa.String(128)),
    sa.Column("action", sa.String(64)),
    sa.Column("repo", sa.String(255)),
    # queued | running | retrying | succeeded | dead | unhandled (derived from the jobs)
    sa.Column("status", sa.String(16), nullable=False),
    sa.Index("ix_deliveries_key", "idempotency_key", "received_at"),
    sa.Index("ix_deliveries_received", "received_at"),
    sa.Index("ix_deliveries_status", "status", "received_at"),
)

jobs = sa.Table(
    "jobs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("delivery_id", sa.String(32), sa.ForeignKey("deliveries.id"), nullable=False),
    sa.Column("handler", sa.String(255), nullable=False),
    # queued | running | succeeded | dead
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    # attempts made before the last replay: the retry budget counts from here
    sa.Column("budget_start", sa.Integer, nullable=False, default=0),
    sa.Column("next_run_at", sa.Float, nullable=False),
    sa.Column("claimed_by", sa.String(64)),
    sa.Column("claim_expires_at", sa.Float),
    sa.Column("result", sa.Text),
    sa.Column("last_error", sa.Text),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index("ix_jobs_delivery", "delivery_id"),
    sa.Index("ix_jobs_due", "status", "next_run_at"),
)

attempts = sa.Table(
    "attempts",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("job_id", sa.String(32), sa.ForeignKey("jobs.id"), nullable=False),
    sa.Column("number", sa.Integer, nullable=False),
    sa.Column("worker", sa.String(64), nullable=False),
    sa.Column("started_at", sa.Float, nullable=False),
    sa.Column("finished_at", sa.Float, nullable=False),
    # succeeded | failed | dead
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("error", sa.Text),
    sa.Column("traceback", sa.Text),
    sa.Index("ix_attempts_job", "job_id"),
)


# CommitScheduler state (see commit_scheduler.py). New tables only: a database written by an
# older spacehooks gains them on start, so the schema version does not change.
commit_schedulers = sa.Table(
    "commit_schedulers",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),  # digest of repo, revision, paths
    sa.Column("repo", sa.String(255), nullable=False),  # "datasets/acme/logs@main:data/"
    sa.Column("folder", sa.Text, nullable=False),
    sa.Column("last_commit", sa.String(64)),
    sa.Column("last_commit_at", sa.Float),
    sa.Column("last_files", sa.Integer, nullable=False, default=0),
    sa.Column("last_bytes", sa.BigInteger, nullable=False, default=0),
    sa.Column("total_files", sa.Integer, nullable=False, default=0),
    sa.Column("total_bytes", sa.BigInteger, nullable=False, default=0),
    sa.Column("last_error", sa.Text),
    sa.Column("last_error_at", sa.Float),
    sa.Column("updated_at", sa.Float, nullable=False),
)

commit_uploads = sa.Table(
    "commit_uploads",
    metadata,
    sa.Column("scheduler_id", sa.String(32), primary_key=True),
    sa.Column("path", sa.Text, primary_key=True),  # relative to the watched folder, POSIX
    sa.Column("size", sa.BigInteger, nullable=False),  # bytes uploaded (the scan's snapshot)
    sa.Column("mtime_ns", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("uploaded_at", sa.Float, nullable=False),
)


# What handlers acted on, for the console's Resources tab (see resources.py).
touched_resources = sa.Table(
    "touched_resources",
    metadata,
    sa.Column("kind", sa.String(16), primary_key=True),  # space | endpoint | instances
    sa.Column("ident", sa.String(255), primary_key=True),
    sa.Column("touched_at", sa.Float, nullable=False),
)


# What the automations did to the Hub and the provider (see audit.py), and what they remember
# between runs (their state: tasks, deadlines, previews).
audit_log = sa.Table(
    "audit_log",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("actor", sa.String(255), nullable=False),  # the handler or schedule
    sa.Column("action", sa.String(64), nullable=False),  # e.g. request_space_hardware
    sa.Column("target", sa.String(255), nullable=False),  # e.g. space demo/trainer
    sa.Column("outcome", sa.String(16), nullable=False),  # done | failed | skipped
    sa.Column("delivery_id", sa.String(32)),
    sa.Column("attempt", sa.Integer),
    sa.Column("cost_per_hour", sa.Float),
    sa.Column("detail", sa.Text),  # JSON
    # once-only actions: the key that makes a retry or a replay skip them
    sa.Column("once_key", sa.String(255), unique=True),
    sa.Index("ix_audit_at", "at"),
)

automation_state = sa.Table(
    "automation_state",
    metadata,
    sa.Column("key", sa.String(255), primary_key=True),  # "<automation>:<what>"
    sa.Column("value", sa.Text, nullable=False),  # JSON
    sa.Column("updated_at", sa.Float, nullable=False),
)


class BulkStatement:
    """A Core statement compiled once per dialect and run with the driver's own executemany.

    For the hot batch writes: SQLAlchemy's per-row parameter processing costs more than the
    database itself there (measured: ~18 us a row). Values go to the driver as they are, so rows
    must hold driver-ready values (str, float, int, bytes, None).
    """

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self._compiled: dict[tuple[str, tuple[str, ...]], Any] = {}

    def executemany(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        if not rows:
            return
        keys = tuple(rows[0])
        compiled = self._compiled.get((conn.dialect.name, keys))
        if compiled is None:
            compiled = self.statement.compile(dialect=conn.dialect, column_keys=list(keys))
            self._compiled[(conn.dialect.name, keys)] = compiled
        if compiled.positional:
            order = compiled.positiontup
            conn.exec_driver_sql(compiled.string, [tuple(row[k] for k in order) for row in rows])
        else:
            conn.exec_driver_sql(compiled.string, rows)


class SchemaTooNew(RuntimeError):
    """The database was written by a newer spacehooks than this one."""


def _normalize_url(url: str) -> str:
    if url.startswith(("postgres://", "postgresql://")):
        rest = url.split("://", 1)[1]
        try:
            import psycopg  # noqa: F401
        except ImportError:
            raise RuntimeError(
                "DATABASE_URL points at PostgreSQL but the driver is missing: "
                "pip install 'spacehooks[postgres]'."
            ) from None
        return "postgresql+psycopg://" + rest
    return url


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy's `begin` event decide how transactions start (see below).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk (fsync) before it returns; the inbox promises that.
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=10000")
    # Checkpoints run in their own thread (`_Checkpointer`), not inside a webhook's commit.
    cur.execute("PRAGMA wal_autocheckpoint=0")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    # Writers take the write lock up front so a reader-turned-writer never gets SQLITE_BUSY.
    immediate = conn.get_execution_options().get("sqlite_immediate", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


class Database:
    """An engine with the spacehooks schema, and its group-commit writer."""

    def __init__(self, url: str) -> None:
        self.url = _normalize_url(url)
        self.is_postgres = self.url.startswith("postgresql")
        if self.url.startswith("sqlite:///"):
            path = self.url[len("sqlite:///") :]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.engine: Engine = sa.create_engine(
            self.url,
            pool_pre_ping=self.is_postgres,
            pool_size=8,
            max_overflow=8,
        )
        if not self.is_postgres:
            sa.event.listen(self.engine, "connect", _sqlite_pragmas)
            sa.event.listen(self.engine, "begin", _sqlite_begin)
        self._writer: _Writer | None = None
        self._checkpointer: _Checkpointer | None = None

    def __repr__(self) -> str:
        # The URL may hold a password; show only the dialect and where.
        return f"Database({self.engine.url.render_as_string(hide_password=True)!r})"

    def create_schema(self) -> None:
        """Create the tables on first start; refuse a database written by a newer version."""
        with self.begin() as conn:
            if self.is_postgres:
                # Two replicas starting at once must not race on CREATE TABLE.
                conn.execute(sa.text("SELECT pg_advisory_xact_lock(727274)"))
            metadata.create_all(conn, checkfirst=True)
            row = conn.execute(
                sa.select(meta.c.value).where(meta.c.key == "schema_version")
            ).scalar_one_or_none()
            if row is None:
                conn.execute(meta.insert().values(key="schema_version", value=str(SCHEMA_VERSION)))
            elif int(row) > SCHEMA_VERSION:
                raise SchemaTooNew(
                    f"The database at {self.engine.url.render_as_string(hide_password=True)} has "
                    f"schema version {row}, but this spacehooks knows versions up to "
                    f"{SCHEMA_VERSION}. Upgrade spacehooks, or point SPACEHOOKS_DB/DATABASE_URL "
                    "at another database."
                )

    def begin(self) -> Any:
        """A write transaction on a pooled connection (``with db.begin() as conn``)."""
        return self.engine.execution_options(sqlite_immediate=True).begin()

    def read(self, fn: Callable[[Connection], T]) -> T:
        with self.engine.connect() as conn:
            return fn(conn)

    async def aread(self, fn: Callable[[Connection], T]) -> T:
        return await asyncio.to_thread(self.read, fn)

    # -- group commit -------------------------------------------------------------------------

    def start_writer(self) -> None:
        if self._writer is None:
            self._writer = _Writer(self)
            self._writer.start()
            if not self.is_postgres:
                self._checkpointer = _Checkpointer(self)
                self._checkpointer.start()

    def submit(self, fn: Callable[[Connection], T]) -> concurrent.futures.Future[T]:
        """Queue a write for the next group commit; the future resolves after COMMIT."""
        return self._put(None, fn)

    def submit_item(self, op: BatchOp, item: Any) -> concurrent.futures.Future[Any]:
        """Queue one item for the batch operation `op`; resolves to its result after COMMIT."""
        return self._put(op, item)

    def _put(self, op: BatchOp | None, arg: Any) -> concurrent.futures.Future[Any]:
        if self._writer is None:
            raise RuntimeError("The database writer is not running (the app was not started).")
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._writer.queue.put((op, arg, fut))
        return fut

    async def write(self, fn: Callable[[Connection], T]) -> T:
        return await asyncio.wrap_future(self.submit(fn))

    async def write_item(self, op: BatchOp, item: Any) -> Any:
        return await asyncio.wrap_future(self.submit_item(op, item))

    def close(self) -> None:
        if self._writer is not None:
            self._writer.stop()
            self._writer = None
        if self._checkpointer is not None:
            self._checkpointer.stop()
            self._checkpointer = None
        self.engine.dispose()


class _Writer(threading.Thread):
    def __init__(self, db: Database) -> None:
        super().__init__(name="spacehooks-db-writer", daemon=True)
        self.db = db
        self.queue: queue.Queue[_Entry | None] = queue.Queue()

    def stop(self) -> None:
        self.queue.put(None)
        self.join(timeout=30)

    def run(self) -> None:
        stopping = False
        while not stopping:
            item = self.queue.get()
            if item is None:
                break
            group = [item]
            while len(group) < _MAX_BATCH:
                try:
                    nxt = self.queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stopping = True
                    break
                group.append(nxt)
            try:
                self._commit(group)
            except Exception:  # never let one group end the writer: every later write would hang
                log.exception("database writer: unexpected error; continuing")

    @staticmethod
    def _apply(conn: Connection, group: list[_Entry]) -> list[Any]:
        """Run a group in `conn`: plain writes in order, batch items op by op."""
        results: list[Any] = [None] * len(group)
        by_op: dict[BatchOp, list[int]] = {}
        for index, (op, arg, _) in enumerate(group):
            if op is None:
                results[index] = arg(conn)
            else:
                by_op.setdefault(op, []).append(index)
        for op, indexes in by_op.items():
            out = op(conn, [group[i][1] for i in indexes])
            for i, result in zip(indexes, out, strict=True):
                results[i] = result
        return results

    def _commit(self, group: list[_Entry]) -> None:
        try:
            with self.db.begin() as conn:
                results = self._apply(conn, group)
        except Exception as exc:
            if len(group) > 1:
                # Isolate the failing write: everything else still commits, one by one.
                for entry in group:
                    self._commit([entry])
                return
            log.error("database write failed: %s: %s", type(exc).__name__, exc)
            _settle(group[0][2], error=exc)
            return
        for (_, _, fut), result in zip(group, results, strict=True):
            _settle(fut, result=result)


def _settle(
    fut: concurrent.futures.Future[Any], *, result: Any = None, error: BaseException | None = None
) -> None:
    """Resolve a write's future, unless its waiter gave up (a cancelled future): the write
    itself is committed either way."""
    if fut.done():
        return
    if error is not None:
        fut.set_exception(error)
    else:
        fut.set_result(result)


class _Checkpointer(threading.Thread):
    """Moves SQLite's WAL into the database file off the commit path.

    SQLite's automatic checkpoint runs inside whichever commit crosses the threshold, so that
    commit (and every webhook waiting on it) pays for copying and fsyncing the database file:
    measured as the p99 of webhook latency. A PASSIVE checkpoint from this thread never blocks
    the writer; it copies what it can, once a second.
    """

    interval = 1.0

    def __init__(self, db: Database) -> None:
        super().__init__(name="spacehooks-db-checkpoint", daemon=True)
        self.db = db
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=10)
        self._checkpoint("TRUNCATE")

    def _checkpoint(self, mode: str) -> None:
        # On the driver's connection: a checkpoint inside a transaction (SQLAlchemy would open
        # one) cannot move pages past its own snapshot.
        raw = self.db.engine.raw_connection()
        try:
            raw.driver_connection.execute(f"PRAGMA wal_checkpoint({mode})").fetchall()
        except Exception as exc:
            log.warning("WAL checkpoint failed: %s", exc)
        finally:
            raw.close()

    def run(self) -> None:
        while not self._halt.wait(self.interval):
            self._checkpoint("PASSIVE")
