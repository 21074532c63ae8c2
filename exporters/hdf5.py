"""Telling HDF5 files apart by content: netx networks and NIR graphs are both HDF5."""

from __future__ import annotations

import os
from pathlib import Path

from dietsnn_deploy.errors import DeployError

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
#: what h5py raises for a damaged file, depending on where the damage is
DAMAGE_ERRORS = (OSError, RuntimeError, KeyError, ValueError)


def is_hdf5(path: str | os.PathLike) -> bool:
    """True if the file starts with the HDF5 signature (DeployError if it is missing)."""
    file = Path(path)
    if not file.is_file():
        raise DeployError(f"file not found: {file}")
    with open(file, "rb") as handle:
        return handle.read(8) == HDF5_SIGNATURE


def top_groups(path: str | os.PathLike) -> frozenset[str] | None:
    """The names at the root of an HDF5 file, or None if it is not one or too damaged to list."""
    if not is_hdf5(path):
        return None
    import h5py

    try:
        with h5py.File(path, "r") as f:
            return frozenset(f.keys())
    except DAMAGE_ERRORS:
        return None
