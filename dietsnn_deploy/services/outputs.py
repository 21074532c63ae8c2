"""Output paths that can never destroy an input: refused before any work is done."""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

from dietsnn_deploy.errors import DeployError


def _identity(path: Path) -> tuple:
    """What makes two paths the same file: (device, inode) if it exists (catches symlinks
    and hard links), else the resolved path (catches symlinked folders and ``..``)."""
    try:
        status = path.stat()
        return ("inode", status.st_dev, status.st_ino)
    except OSError:
        return ("path", str(path.resolve()))


def check_outputs(
    inputs: Iterable[str | os.PathLike | None], outputs: Iterable[str | os.PathLike | None]
) -> None:
    """Refuse an output that is one of the inputs (same path, a symlink to it or a hard link
    of it) and two outputs that are the same file."""
    known = {
        _identity(Path(path)): Path(path)
        for path in inputs
        if path is not None and Path(path).exists()
    }
    written: dict[tuple, Path] = {}
    for path in (Path(p) for p in outputs if p is not None):
        identity = _identity(path)
        if identity in known:
            raise DeployError(
                f"output {path} is the input {known[identity]}: writing it would destroy the "
                "input; choose another output path"
            )
        if identity in written:
            raise DeployError(f"outputs {written[identity]} and {path} are the same file")
        written[identity] = path
