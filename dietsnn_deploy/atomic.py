"""Atomic file output: write to a temp file in the target's folder, then rename into place,
so a reader never sees a half-written file and an interrupted write leaves none behind.

The temp file is ``.<name>.<pid>.<random>.tmp``. On any exception (Ctrl-C and SIGTERM
included, see :mod:`dietsnn_deploy.interrupts`) it is removed; one left by a process that was
killed outright (SIGKILL, power loss) is removed by the next write to the same target once its
process is gone. Errors name the target, never the temp file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

from dietsnn_deploy.errors import DeployError


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_orphans(path: Path) -> None:
    """Temp files of writes to ``path`` whose process no longer exists."""
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):
        parts = leftover.name[len(path.name) + 2 :].split(".")
        if parts and parts[0].isdigit() and not _alive(int(parts[0])):
            leftover.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temp path to write; on success it replaces ``path`` (mode 0666 & ~umask)."""
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        _remove_orphans(path)
        fd, tmp = tempfile.mkstemp(
            prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp", dir=path.parent
        )
    except OSError as exc:
        raise DeployError(f"{path}: cannot write ({exc.strerror or exc})") from None
    os.close(fd)
    try:
        yield Path(tmp)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        reason = exc.strerror or " ".join(str(exc).replace(tmp, str(path)).split())[:160]
        raise DeployError(f"{path}: cannot write ({reason})") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically; returns the path."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))
