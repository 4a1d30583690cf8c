"""Follow a PostgreSQL NOTIFY channel and count the changes it announces.

A process that caches what a few tables say (the signed-in caller's account, unit
and dispatch flag) needs to know when any process committed a change to them.
Triggers (migration 0013) send ``NOTIFY`` on commit; a ``ChangeWatcher`` listens on
its own connection in a daemon thread and bumps a generation number for each
notification. A cache entry is good only while the generation it was read under
is still current, so a change invalidates every entry at once.

While the watcher is not listening (before its first ``LISTEN``, or after its
connection broke) ``generation()`` is None and callers must not cache at all:
a notification may have been missed.
"""

from __future__ import annotations

import atexit
import logging
import os
import threading

import psycopg
from sqlalchemy import Engine, event

log = logging.getLogger(__name__)

# The channel the triggers of migration 0013 notify on.
ACTOR_CHANNEL = "gridmap_actors"
# Tables whose writes change what the sign-in check reads (see SESSION_ACTOR).
ACTOR_TABLES = ("users", "sign_in_sessions", "units", "dispatch_orders", "dispatch_targets")
RECONNECT_AFTER_S = (0.5, 1.0, 2.0, 5.0)


class ChangeWatcher:
    """Listens on one channel of one database; ``generation()`` changes on every change."""

    def __init__(self, libpq_url: str, channel: str) -> None:
        self.libpq_url = libpq_url
        self.channel = channel
        self._generation = 0
        self._listening = False
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._pid = 0

    def generation(self) -> int | None:
        """Return the current generation, or None while changes may go unseen."""
        if self._pid != os.getpid():
            self._start()  # first use, or a worker forked from the process that started it
            return None
        return self._generation if self._listening else None

    def changed(self) -> None:
        """Count a change this process committed itself (its notification follows)."""
        with self._lock:
            self._generation += 1

    def close(self) -> None:
        """Stop listening and wait for the thread to end (within about a second)."""
        self._stop.set()
        self._join()

    def _join(self) -> None:
        thread = self._thread
        if thread is not None and thread.is_alive() and thread is not threading.current_thread():
            thread.join(timeout=5)

    def _start(self) -> None:
        with self._lock:
            if self._pid == os.getpid():
                return
            self._pid = os.getpid()
            self._listening = False
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name=f"listen-{self.channel}",
                                            daemon=True)
            self._thread.start()

    def _set_listening(self, listening: bool) -> None:
        with self._lock:
            self._listening = listening
            self._generation += 1  # what was read while not listening is not trusted

    def _run(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                with psycopg.connect(self.libpq_url, autocommit=True,
                                     application_name="gridmap-listen") as conn:
                    conn.execute(f'LISTEN "{self.channel}"')
                    self._set_listening(True)
                    failures = 0
                    while not self._stop.is_set():
                        for _note in conn.notifies(timeout=1.0):
                            self.changed()
            except Exception as error:  # whatever broke, the thread must live on
                # Not listening: callers stop caching until the next LISTEN.
                log.warning("listening for %s stopped (%s); retrying", self.channel,
                            type(error).__name__)
            finally:
                self._set_listening(False)
            delay = RECONNECT_AFTER_S[min(failures, len(RECONNECT_AFTER_S) - 1)]
            failures += 1
            self._stop.wait(delay)


_WATCHERS: dict[tuple[str, str], ChangeWatcher] = {}
_WATCHERS_LOCK = threading.Lock()


def watcher(libpq_url: str, channel: str = ACTOR_CHANNEL) -> ChangeWatcher:
    """Return this process's watcher of the channel (one per database and channel)."""
    with _WATCHERS_LOCK:
        found = _WATCHERS.get((libpq_url, channel))
        if found is None:
            found = _WATCHERS[libpq_url, channel] = ChangeWatcher(libpq_url, channel)
        return found


@atexit.register
def _close_all() -> None:
    watchers = list(_WATCHERS.values())
    for each in watchers:
        each._stop.set()  # all at once: each thread looks only once a second
    for each in watchers:
        each._join()


def _writes_actor_tables(statement: str) -> bool:
    head = statement.lstrip()[:7].upper()
    if not head.startswith(("INSERT", "UPDATE", "DELETE", "TRUNCAT")):
        return False
    return any(table in statement for table in ACTOR_TABLES)


_COUNTED: set[tuple[int, int]] = set()

# Execution options of a write to an actor table that changes nothing the sign-in
# check reads (a sign-in's last-used stamp, whose column the trigger ignores too):
# this process does not count it as a change either.
UNANNOUNCED = {"gridmap_unannounced": True}


def count_own_commits(engine: Engine, watch: ChangeWatcher) -> None:
    """Bump the watcher when a commit on the engine wrote an actor table (once per pair).

    The notification of this process's own commit arrives a moment later on the
    listening thread; a request that follows at once (sign out, then the next page)
    must not find the old entry in that moment. The bump comes just before the
    commit, so a request reading concurrently may still store the old row under the
    new generation; the notification after the commit ends that entry too.
    """
    if (id(engine), id(watch)) in _COUNTED:
        return
    _COUNTED.add((id(engine), id(watch)))

    @event.listens_for(engine, "before_cursor_execute")
    def _note_write(conn, _cursor, statement, _params, context, _many) -> None:
        if context is not None and context.execution_options.get("gridmap_unannounced"):
            return
        if _writes_actor_tables(statement):
            conn.info["actor_tables_written"] = True

    @event.listens_for(engine, "commit")
    def _committed(conn) -> None:
        if conn.info.pop("actor_tables_written", False):
            watch.changed()

    @event.listens_for(engine, "rollback")
    def _rolled_back(conn) -> None:
        conn.info.pop("actor_tables_written", None)
