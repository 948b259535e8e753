"""`CommitScheduler`: push a local folder to a Hub repo every few minutes.

huggingface_hub's API and behaviour: the repo and the folder are created when missing, the first
push happens at once and then every `every` minutes, the folder is treated as append-only (a
file's size is snapshotted when the folder is scanned; bytes appended during the upload wait for
the next push), nothing is committed when nothing changed, an error is logged and the next tick
tries again, `lock` is held while the folder is scanned, `trigger()` returns a Future, and a
`with` block (or the interpreter's exit) ends with a final push.

What it adds:
- What was uploaded (path, size, mtime, SHA-256) is kept in spacehooks' database, so a restarted
  process uploads only what changed since it last pushed. huggingface_hub remembers this in
  memory and uploads the whole folder again after every restart of a Space.
- The scan uses `os.scandir` and stat data only: unchanged files are never read.
- A file whose mtime moved but whose content did not (a `touch`) is not committed again.
- It runs as an APScheduler job (one push at a time, coalesced), not a sleeping thread.
- Its state (last commit, files and bytes, next run, last error) is queryable: `state()`; the
  console shows every scheduler of the process (`live_schedulers()`).
- A spacehooks server stopping on SIGTERM pushes each scheduler one last time
  (`final_push_all`), within its shutdown grace period.
"""

from __future__ import annotations

import atexit
import concurrent.futures
import contextlib
import hashlib
import logging
import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from .client import HubClient
from .client.commits import matches_patterns
from .client.models import CommitInfo
from .client.operations import CommitOperationAdd, FileSlice
from .db import Database, commit_schedulers, commit_uploads

__all__ = ["CommitScheduler", "SchedulerState", "final_push_all", "live_schedulers"]

log = logging.getLogger("spacehooks.commits")

#: Folders never uploaded, at any depth (as huggingface_hub).
_SKIPPED_DIRS = (".git",)
_SKIPPED_NESTED = ((".cache", "huggingface"),)
_DELETE_CHUNK = 500


@dataclass(frozen=True)
class SchedulerState:
    """What the console shows for one CommitScheduler."""

    id: str
    repo: str  # "datasets/acme/logs@main:data/"
    folder: str
    every_minutes: float
    paused: bool
    stopped: bool
    next_run: float | None
    last_commit: str | None
    last_commit_at: float | None
    last_files: int
    last_bytes: int
    total_files: int
    total_bytes: int
    last_error: str | None
    last_error_at: float | None


@dataclass(frozen=True)
class _Uploaded:
    size: int
    mtime_ns: int
    sha256: str


@dataclass(frozen=True)
class _Change:
    """A file whose stat data differs from what was last uploaded."""

    relpath: str
    local: Path
    size: int  # snapshot at scan time: only these bytes go in this push
    mtime_ns: int


class CommitScheduler:
    """Push `folder_path` to `repo_id` every `every` minutes (see the module docs).

    Args:
        repo_id: the repo to commit to (created when missing).
        folder_path: the local folder to upload (created when missing).
        every: minutes between pushes (default 5).
        path_in_repo: folder in the repo to upload into (default: its root).
        repo_type: "model" (default), "dataset" or "space".
        revision: the branch to commit to (default "main").
        private: visibility when the repo is created (ignored if it exists).
        token: the Hub token when `hf_api` is not given.
        allow_patterns, ignore_patterns: glob patterns on paths relative to the folder.
        squash_history: squash the branch's history after each push.
        hf_api: the `HubClient` to use (huggingface_hub's argument name).
        database: where uploads are recorded: a `Database`, a SQLAlchemy URL, or None for
            spacehooks' (DATABASE_URL / SPACEHOOKS_DB, see `Settings.database_url`).
    """

    def __init__(
        self,
        *,
        repo_id: str,
        folder_path: str | Path,
        every: int | float = 5,
        path_in_repo: str | None = None,
        repo_type: str | None = None,
        revision: str | None = None,
        private: bool | None = None,
        token: str | None = None,
        allow_patterns: list[str] | str | None = None,
        ignore_patterns: list[str] | str | None = None,
        squash_history: bool = False,
        hf_api: HubClient | None = None,
        database: Database | str | None = None,
    ) -> None:
        if isinstance(every, bool) or not isinstance(every, (int, float)) or not every > 0:
            raise ValueError(f"'every' must be a positive number of minutes, not {every!r}.")
        self.api = hf_api if hf_api is not None else HubClient(token=token)
        self.folder_path = Path(folder_path).expanduser().resolve()
        if self.folder_path.is_file():
            raise ValueError(f"'folder_path' must be a folder, not a file: '{self.folder_path}'.")
        self.folder_path.mkdir(parents=True, exist_ok=True)
        self.path_in_repo = (path_in_repo or "").strip("/")
        self.allow_patterns = allow_patterns
        self.ignore_patterns = ignore_patterns
        repo_url = self.api.create_repo(
            repo_id, private=private, repo_type=repo_type, exist_ok=True
        )
        self.repo_id = repo_url.repo_id
        self.repo_type = repo_type
        self.revision = revision
        self.every = every
        self.squash_history = squash_history
        #: held while the folder is scanned: take it to write files consistently with a push
        self.lock = threading.Lock()

        self._db = self._open_database(database)
        self._excluded = self._database_files()
        self.id = hashlib.sha256(
            "\0".join(
                [
                    repo_type or "model",
                    self.repo_id,
                    revision or "main",
                    self.path_in_repo,
                    str(self.folder_path),
                ]
            ).encode()
        ).hexdigest()[:32]
        self.name = (
            f"{repo_type or 'model'}s/{self.repo_id}@{revision or 'main'}:{self.path_in_repo}/"
        )
        self._uploaded = self._load_uploads()
        self._push_lock = threading.Lock()  # one push at a time, whoever asks
        self._stopped = False
        self._failing = False  # the last push raised: the next good one clears last_error
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="spacehooks-commit"
        )
        self.last_future: concurrent.futures.Future[CommitInfo | None] | None = None
        _register(self)
        _aps().add_job(
            _tick,
            "interval",
            args=[self.id],
            id=self.id,
            name=self.name,
            seconds=every * 60,
            next_run_time=datetime.now(timezone.utc),  # the first push happens at once
            max_instances=1,
            coalesce=True,
            misfire_grace_time=None,
            replace_existing=True,
        )
        log.info(
            "scheduled pushes of %s to %s every %g minute(s)", self.folder_path, self.name, every
        )

    def __repr__(self) -> str:
        return (
            f"CommitScheduler({self.name!r}, folder={str(self.folder_path)!r}, every={self.every})"
        )

    # -- huggingface_hub's API -----------------------------------------------------------------

    def trigger(self) -> concurrent.futures.Future[CommitInfo | None]:
        """Push now (queued behind a push in progress); the future holds the commit or None."""
        if self._stopped:
            done: concurrent.futures.Future[CommitInfo | None] = concurrent.futures.Future()
            done.set_result(None)
            return done
        self.last_future = self._executor.submit(self._push_to_hub)
        return self.last_future

    def stop(self) -> None:
        """Stop scheduling pushes. A stopped scheduler cannot be restarted."""
        if self._stopped:
            return
        self._stopped = True
        _unregister(self)
        self._executor.shutdown(wait=False)

    def __enter__(self) -> CommitScheduler:
        return self

    def __exit__(self, *exc_info: Any) -> None:
        self.trigger().result()  # the final push
        self.stop()

    def push_to_hub(self) -> CommitInfo | None:
        """Commit the files that changed since the last push; None when nothing did.

        Override it to upload differently (e.g. to pack files into one archive); it has `api`,
        `folder_path`, `path_in_repo`, `repo_id`, `repo_type`, `revision` and `lock`. It runs
        in the background, one call at a time, and an exception it raises is logged and retried
        at the next tick.
        """
        with self.lock:
            changes = self.scan()
        if not changes:
            log.debug("%s: no changed file, no commit", self.name)
            return None
        return self._commit(changes)

    # -- beyond huggingface_hub ------------------------------------------------------------------

    def scan(self) -> list[_Change]:
        """The files that differ from what was last uploaded, from stat data only."""
        changes = []
        for relpath, local, stat in self._walk():
            if not matches_patterns(relpath, self.allow_patterns):
                continue
            if self.ignore_patterns is not None and matches_patterns(relpath, self.ignore_patterns):
                continue
            known = self._uploaded.get(relpath)
            if (
                known is not None
                and known.size == stat.st_size
                and known.mtime_ns == stat.st_mtime_ns
            ):
                continue
            changes.append(_Change(relpath, local, stat.st_size, stat.st_mtime_ns))
        changes.sort(key=lambda c: c.relpath)
        return changes

    def state(self) -> SchedulerState:
        """This scheduler's last commit, totals, next run and last error."""
        with self._db.engine.connect() as conn:
            row = conn.execute(
                sa.select(commit_schedulers).where(commit_schedulers.c.id == self.id)
            ).one()
        job = None if self._stopped else _aps().get_job(self.id)
        next_run = job.next_run_time.timestamp() if job and job.next_run_time else None
        return SchedulerState(
            id=self.id,
            repo=self.name,
            folder=str(self.folder_path),
            every_minutes=float(self.every),
            paused=job is not None and job.next_run_time is None,
            stopped=self._stopped,
            next_run=next_run,
            last_commit=row.last_commit,
            last_commit_at=row.last_commit_at,
            last_files=row.last_files,
            last_bytes=row.last_bytes,
            total_files=row.total_files,
            total_bytes=row.total_bytes,
            last_error=row.last_error,
            last_error_at=row.last_error_at,
        )

    def pause(self) -> None:
        """Skip scheduled pushes until `resume()` (a `trigger()` still pushes)."""
        _aps().pause_job(self.id)

    def resume(self) -> None:
        _aps().resume_job(self.id)

    # -- internals -----------------------------------------------------------------------------

    def _push_to_hub(self) -> CommitInfo | None:
        with self._push_lock:
            if self._stopped:
                return None
            started = time.monotonic()
            try:
                info = self.push_to_hub()
                if self.squash_history and info is not None:
                    self.api.super_squash_history(
                        self.repo_id, repo_type=self.repo_type, branch=self.revision
                    )
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"[:2000]
                log.error("%s: push failed, will retry at the next tick: %s", self.name, error)
                self._record(last_error=error, last_error_at=time.time())
                self._failing = True
                raise
            if info is not None and type(self).push_to_hub is not CommitScheduler.push_to_hub:
                # A custom push_to_hub: record its commit; it counts its own files.
                self._record(
                    last_commit=getattr(info, "oid", None),
                    last_commit_at=time.time(),
                    last_error=None,
                )
            elif self._failing:  # a push that worked (with nothing to commit) ends the failure
                self._record(last_error=None)
            self._failing = False
            log.debug("%s: push done in %.2f s", self.name, time.monotonic() - started)
            return info

    def _walk(self) -> Iterator[tuple[str, Path, os.stat_result]]:
        stack = [(self.folder_path, "")]
        while stack:
            directory, prefix = stack.pop()
            try:
                entries = list(os.scandir(directory))
            except OSError as exc:  # removed or unreadable meanwhile: skip it this time
                log.warning("%s: cannot list %s: %s", self.name, directory, exc)
                continue
            for entry in entries:
                relpath = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    if entry.name in _SKIPPED_DIRS or any(
                        prefix.endswith(parent + "/") and entry.name == child
                        for parent, child in _SKIPPED_NESTED
                    ):
                        continue
                    stack.append((Path(entry.path), relpath + "/"))
                elif entry.is_file():
                    if entry.path in self._excluded:
                        continue
                    try:
                        stat = entry.stat()
                    except FileNotFoundError:
                        continue
                    yield relpath, Path(entry.path), stat

    def _commit(self, changes: list[_Change]) -> CommitInfo | None:
        prefix = f"{self.path_in_repo}/" if self.path_in_repo else ""
        slices: list[FileSlice] = []
        to_send: list[tuple[_Change, CommitOperationAdd]] = []
        touched: list[tuple[_Change, _Uploaded]] = []  # same content, new mtime
        try:
            for change in changes:
                try:
                    window = FileSlice(change.local, 0, change.size)
                except FileNotFoundError:
                    continue
                slices.append(window)
                op = CommitOperationAdd(prefix + change.relpath, window)
                known = self._uploaded.get(change.relpath)
                if known is not None and known.size == len(window) and known.sha256 == op.sha256:
                    touched.append((change, known))
                else:
                    to_send.append((change, op))
            info = None
            sent_bytes = 0
            if to_send:
                info = self.api.create_commit(
                    self.repo_id,
                    [op for _, op in to_send],
                    commit_message="Scheduled Commit",
                    repo_type=self.repo_type,
                    revision=self.revision,
                )
                sent_bytes = sum(
                    op.size for _, op in to_send if not op.unchanged and not op.should_ignore
                )
            now = time.time()
            rows = [(c, _Uploaded(op.size, c.mtime_ns, op.sha256)) for c, op in to_send]
            rows += [(c, _Uploaded(k.size, c.mtime_ns, k.sha256)) for c, k in touched]
            self._save_uploads(rows, now)
            if info is not None:
                self._record(
                    last_commit=info.oid,
                    last_commit_at=now,
                    last_files=len(to_send),
                    last_bytes=sent_bytes,
                    total_files=commit_schedulers.c.total_files + len(to_send),
                    total_bytes=commit_schedulers.c.total_bytes + sent_bytes,
                    last_error=None,
                )
                log.info(
                    "%s: committed %d file(s), %d bytes, commit %s",
                    self.name,
                    len(to_send),
                    sent_bytes,
                    info.oid[:12],
                )
            return info
        finally:
            for window in slices:
                window.close()

    # -- the database --------------------------------------------------------------------------

    @staticmethod
    def _open_database(database: Database | str | None) -> Database:
        if isinstance(database, Database):
            db = database
        else:
            if database is None:
                from .settings import Settings

                database = Settings.from_env().database_url()
            db = Database(database)
        db.create_schema()
        return db

    def _database_files(self) -> set[str]:
        """A SQLite database inside the watched folder is never uploaded."""
        database = self._db.engine.url.database
        if self._db.is_postgres or not database or database == ":memory:":
            return set()
        path = str(Path(database).resolve())
        return {path + suffix for suffix in ("", "-wal", "-shm", "-journal")}

    def _load_uploads(self) -> dict[str, _Uploaded]:
        now = time.time()
        with self._db.begin() as conn:
            exists = conn.execute(
                sa.select(commit_schedulers.c.id).where(commit_schedulers.c.id == self.id)
            ).first()
            if exists is None:
                conn.execute(
                    commit_schedulers.insert().values(
                        id=self.id,
                        repo=self.name,
                        folder=str(self.folder_path),
                        last_files=0,
                        last_bytes=0,
                        total_files=0,
                        total_bytes=0,
                        updated_at=now,
                    )
                )
            rows = conn.execute(
                sa.select(
                    commit_uploads.c.path,
                    commit_uploads.c.size,
                    commit_uploads.c.mtime_ns,
                    commit_uploads.c.sha256,
                ).where(commit_uploads.c.scheduler_id == self.id)
            ).all()
        return {r.path: _Uploaded(r.size, r.mtime_ns, r.sha256) for r in rows}

    def _save_uploads(self, rows: list[tuple[_Change, _Uploaded]], now: float) -> None:
        if not rows:
            return
        with self._db.begin() as conn:
            paths = [c.relpath for c, _ in rows]
            for start in range(0, len(paths), _DELETE_CHUNK):
                conn.execute(
                    commit_uploads.delete().where(
                        commit_uploads.c.scheduler_id == self.id,
                        commit_uploads.c.path.in_(paths[start : start + _DELETE_CHUNK]),
                    )
                )
            conn.execute(
                commit_uploads.insert(),
                [
                    {
                        "scheduler_id": self.id,
                        "path": c.relpath,
                        "size": u.size,
                        "mtime_ns": u.mtime_ns,
                        "sha256": u.sha256,
                        "uploaded_at": now,
                    }
                    for c, u in rows
                ],
            )
        for change, uploaded in rows:
            self._uploaded[change.relpath] = uploaded

    def _record(self, **values: Any) -> None:
        try:
            with self._db.begin() as conn:
                conn.execute(
                    commit_schedulers.update()
                    .where(commit_schedulers.c.id == self.id)
                    .values(updated_at=time.time(), **values)
                )
        except Exception as exc:  # the state is informative; never fail a push over it
            log.warning("%s: could not record its state: %s", self.name, exc)


# -- the process's schedulers --------------------------------------------------------------------

# Strong references: like huggingface_hub's thread, a scheduler nobody keeps a name for still runs.
_live: dict[str, CommitScheduler] = {}
_live_lock = threading.Lock()
_scheduler: Any = None  # the APScheduler BackgroundScheduler all CommitSchedulers share


def _aps() -> Any:
    """The process's APScheduler for CommitSchedulers, started on first use."""
    global _scheduler
    with _live_lock:
        if _scheduler is None:
            from apscheduler.executors.pool import ThreadPoolExecutor
            from apscheduler.schedulers.background import BackgroundScheduler

            _scheduler = BackgroundScheduler(
                executors={"default": ThreadPoolExecutor(8)}, timezone=timezone.utc
            )
            _scheduler.start()
            atexit.register(_push_all_at_exit)
        return _scheduler


def _register(scheduler: CommitScheduler) -> None:
    with _live_lock:
        previous = _live.get(scheduler.id)
        _live[scheduler.id] = scheduler
    if previous is not None and previous is not scheduler:
        # Its job is replaced by the new one's (same id); stopping it only ends its pushes.
        log.warning("a second CommitScheduler for %s replaces the first", scheduler.name)
        previous.stop()


def _unregister(scheduler: CommitScheduler) -> None:
    with _live_lock:
        if _live.get(scheduler.id) is scheduler:
            del _live[scheduler.id]
        else:
            return
    if _scheduler is not None:
        with contextlib.suppress(Exception):  # already gone (JobLookupError)
            _scheduler.remove_job(scheduler.id)


def _tick(scheduler_id: str) -> None:
    """A scheduled push (APScheduler's job): waits for it, so pushes never overlap."""
    scheduler = _live.get(scheduler_id)
    if scheduler is None:
        return
    # A failure is logged and recorded by _push_to_hub; the next tick tries again.
    with contextlib.suppress(Exception):
        scheduler.trigger().result()


def live_schedulers() -> list[CommitScheduler]:
    """Every running CommitScheduler of this process."""
    with _live_lock:
        return list(_live.values())


def final_push_all(timeout: float) -> None:
    """Push every running scheduler once more, then stop it (a server's SIGTERM path).

    Pushes run in parallel, each one behind a push already in progress; those not done within
    `timeout` seconds are left to finish in the background and are logged.
    """
    schedulers = live_schedulers()
    if not schedulers:
        return
    log.info("final push of %d CommitScheduler(s)", len(schedulers))
    futures = {s.trigger(): s for s in schedulers}
    _, pending = concurrent.futures.wait(futures, timeout=timeout)
    for future in pending:
        log.warning("%s: final push still running after %.0f s", futures[future].name, timeout)
    for scheduler in schedulers:
        scheduler.stop()


def _push_all_at_exit() -> None:
    # At interpreter exit no new thread can start: push in this one, as huggingface_hub does.
    for scheduler in live_schedulers():
        with contextlib.suppress(Exception):  # logged by _push_to_hub
            scheduler._push_to_hub()
        scheduler.stop()
