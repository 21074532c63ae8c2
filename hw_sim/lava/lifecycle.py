"""Keep a Lava run from outliving, or hanging, the process that started it.

Lava 0.10 forks its runtime processes with ``multiprocessing`` (start method ``fork``) from the
thread that calls ``create_runtime()``: a shared-memory server, one process per process model
and one runtime service; none forks again.

- :func:`die_with_parent`: every process forked from then on asks the kernel for SIGKILL when
  its parent (the forking thread) dies — even by SIGKILL (``prctl(PR_SET_PDEATHSIG)``, Linux).
  The runtime must be created and stopped from the main thread.
- :class:`DeferredSignals`: SIGINT, SIGTERM and SIGHUP are held while Lava exchanges messages
  and delivered at :meth:`~DeferredSignals.checkpoint` (the runtime paused between chunks), so
  ``stop()`` always completes. Installed before the runtime forks, the handler is inherited by
  its processes: a signal to the whole process group does not kill them under ``stop()``.
- :class:`RuntimeWatchdog`: if one runtime process dies (out of memory, killed), ``run()`` and
  ``stop()`` would block forever; the watchdog kills the rest and ends the program.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from pathlib import Path

from dietsnn_deploy.interrupts import Terminated

PR_SET_PDEATHSIG = 1
WATCHDOG_EXIT = 70  # the program's status when a runtime process died under it
_installed = False
_forking_pid: int | None = None


def _record_parent() -> None:
    global _forking_pid
    _forking_pid = os.getpid()


def _die_with_parent_in_child() -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0) != 0:
        return  # not Linux, or refused: the parent's stop() is the only cleanup then
    if _forking_pid is not None and os.getppid() != _forking_pid:
        os._exit(1)  # the parent died between fork() and prctl()


def die_with_parent() -> None:
    """From now on every child this process forks dies when its parent does (idempotent)."""
    global _installed
    if not _installed and sys.platform.startswith("linux"):
        os.register_at_fork(before=_record_parent, after_in_child=_die_with_parent_in_child)
        _installed = True


class DeferredSignals:
    """Hold SIGINT, SIGTERM and SIGHUP; :meth:`checkpoint` delivers one that arrived.

    A held signal's previous handler is called (the CLI's raises :class:`Terminated`, Python's
    SIGINT handler KeyboardInterrupt); one whose previous action was the default raises
    :class:`Terminated`. Ignored signals stay ignored. Only the main thread can install
    handlers; elsewhere nothing changes.
    """

    SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)

    def __enter__(self) -> DeferredSignals:
        self.pending: int | None = None
        self.previous: dict[int, object] = {}
        self.owner = os.getpid()
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                current = signal.getsignal(signum)
                if current not in (signal.SIG_IGN, None):
                    self.previous[signum] = signal.signal(signum, self._hold)
        return self

    def _hold(self, signum, frame) -> None:
        if self.pending is None:  # in the runtime's forked processes too: record only
            self.pending = signum

    def checkpoint(self) -> None:
        """Deliver a held signal now (call with the runtime paused, inside try/finally)."""
        if self.pending is None or os.getpid() != self.owner:
            return
        signum, self.pending = self.pending, None
        previous = self.previous.get(signum)
        if callable(previous):
            previous(signum, None)
        raise Terminated(signum)

    def __exit__(self, exc_type, exc, traceback) -> None:
        for signum, previous in self.previous.items():
            signal.signal(signum, previous)
        if exc_type is None:
            self.checkpoint()  # a signal that came during the last chunk or stop()


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            found.add(int(entry.name))
    return found


class RuntimeWatchdog:
    """After ``create_runtime()``: if one of the runtime's processes dies, kill the others,
    print one error line and exit with :data:`WATCHDOG_EXIT` (a blocked run cannot recover)."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval

    def __enter__(self) -> RuntimeWatchdog:
        self.pids = _children(os.getpid())
        self.done = threading.Event()
        threading.Thread(target=self._watch, daemon=True, name="lava-watchdog").start()
        return self

    def _watch(self) -> None:
        while not self.done.wait(self.interval):
            alive = _children(os.getpid())
            if self.pids - alive and not self.done.is_set():
                for pid in alive & self.pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                os.write(2, b"error: a Lava runtime process died; stopped the rest\n")
                os._exit(WATCHDOG_EXIT)

    def __exit__(self, *exc) -> None:
        self.done.set()
