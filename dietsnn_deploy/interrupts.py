"""Termination signals as exceptions, so that every run stops the same way whatever ends it.

SIGTERM and SIGHUP raise :class:`Terminated` (a KeyboardInterrupt, as Ctrl-C's SIGINT does),
so ``finally`` blocks run: atomic writes remove their temporary file, the Lava runner stops its
runtime. The CLI exits with 128 + the signal number (130 for Ctrl-C, 143 for SIGTERM).
"""

from __future__ import annotations

import signal
import threading

TERMINATING = (signal.SIGTERM, signal.SIGHUP)


class Terminated(KeyboardInterrupt):
    """The process was asked to end by ``signum``."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum


def _raise(signum, frame) -> None:
    raise Terminated(signum)


def install_termination_handlers() -> None:
    """Make SIGTERM and SIGHUP raise :class:`Terminated` in the main thread (unless ignored)."""
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in TERMINATING:
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, _raise)


def exit_status(exc: KeyboardInterrupt) -> int:
    """128 + the signal number: 130 for Ctrl-C, 143 for SIGTERM, 129 for SIGHUP."""
    return 128 + (exc.signum if isinstance(exc, Terminated) else signal.SIGINT)
