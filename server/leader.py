"""The leader lock: on PostgreSQL, the one process that runs the schedules.

The lock is a PostgreSQL advisory lock held on one dedicated connection. It is released when
that connection closes, which is what happens when the process dies, so another process can
take over: each standby tries every `interval` seconds.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable

import sqlalchemy as sa

from .db import Database

__all__ = ["LeaderLock"]

log = logging.getLogger("spacehooks.schedules")

_LOCK_KEY = 727275  # pg advisory lock id (create_schema uses 727274)


class LeaderLock(threading.Thread):
    """Holds the PostgreSQL advisory lock that makes this process the one running schedules.

    The lock lives on one dedicated connection: it is released when the connection closes,
    which is what happens when the process dies. While leading, the connection is checked every
    `interval`; if it fails, this process stops scheduling and tries again like any other.
    """

    def __init__(
        self,
        db: Database,
        interval: float,
        on_elected: Callable[[], None],
        on_deposed: Callable[[], None],
        on_tick: Callable[[], None],
    ) -> None:
        super().__init__(name="spacehooks-leader", daemon=True)
        self.db = db
        self.interval = interval
        self._elected, self._deposed, self._tick = on_elected, on_deposed, on_tick
        self._halt = threading.Event()
        self._conn: sa.Connection | None = None

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=30)

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                if self._conn is None:
                    self._campaign()
                else:
                    self._conn.execute(sa.text("SELECT 1"))
                    self._conn.commit()
                    self._tick()
            except Exception as exc:
                if self._conn is not None:
                    log.error("lost the scheduler lock's connection (%s); standing down", exc)
                    self._resign()
                else:
                    log.warning("could not campaign for the scheduler lock: %s", exc)
            self._halt.wait(self.interval)
        self._resign()

    def _campaign(self) -> None:
        conn = self.db.engine.connect()
        try:
            won = conn.execute(
                sa.text("SELECT pg_try_advisory_lock(:key)"), {"key": _LOCK_KEY}
            ).scalar()
            conn.commit()
        except Exception:
            conn.invalidate()
            raise
        if not won:
            conn.close()
            return
        self._conn = conn
        log.info("this process now runs the schedules (it holds the scheduler lock)")
        try:
            self._elected()
        except Exception:
            log.exception("could not start the schedules; giving the lock back")
            self._resign()

    def _resign(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        self._deposed()
        with contextlib.suppress(Exception):  # if the connection is gone, so is the lock
            conn.execute(sa.text("SELECT pg_advisory_unlock(:key)"), {"key": _LOCK_KEY})
            conn.commit()
        conn.invalidate()  # never back to the pool: a pooled connection would keep the lock
