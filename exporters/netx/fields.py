"""Typed reads of one HDF5 group, every failure a one-line DeployError that names the place."""

from __future__ import annotations

import math

import h5py
import numpy as np

from dietsnn_deploy.errors import DeployError


class Fields:
    """Reads one HDF5 group's datasets and attributes, checking each against its meaning."""

    def __init__(self, group: h5py.Group, where: str) -> None:
        self.group = group
        self.where = where

    def fail(self, problem: str) -> DeployError:
        return DeployError(f"{self.where}: {problem}")

    def has(self, name: str) -> bool:
        return name in self.group

    def array(self, name: str) -> np.ndarray:
        item = self.group.get(name)
        if not isinstance(item, h5py.Dataset):
            raise self.fail(f"missing field '{name}'")
        try:
            return np.asarray(item[()])
        except (OSError, ValueError, TypeError) as exc:
            raise self.fail(f"unreadable field '{name}' ({exc})") from None

    def ints(self, name: str, sizes: tuple[int, ...] | None = None) -> np.ndarray:
        """Integer-valued array (floats must be whole); ``sizes`` lists allowed sizes."""
        return self._whole(self.array(name), name, sizes)

    def _whole(self, value: np.ndarray, name: str, sizes: tuple[int, ...] | None) -> np.ndarray:
        if value.dtype.kind == "f":
            if not np.all(np.isfinite(value)) or np.any(value != np.round(value)):
                raise self.fail(f"'{name}' has non-integer values")
            if value.size and np.max(np.abs(value)) > 2**62:
                raise self.fail(f"'{name}' has values beyond 64-bit integers")
        elif value.dtype.kind not in "iub":
            raise self.fail(f"'{name}' must be numeric, got dtype {value.dtype}")
        value = value.astype(np.int64)
        if sizes is not None and value.size not in sizes:
            raise self.fail(f"'{name}' has {value.size} values, expected {sizes}")
        return value

    def floats(self, name: str, size: int | None = None) -> np.ndarray:
        """Finite float64 values (any real dtype), optionally exactly ``size`` of them."""
        value = self.array(name)
        if value.dtype.kind not in "fiu":
            raise self.fail(f"'{name}' must be numeric, got dtype {value.dtype}")
        value = value.astype(np.float64)
        if not np.all(np.isfinite(value)):
            raise self.fail(f"'{name}' has NaN or infinite values")
        if size is not None and value.size != size:
            raise self.fail(f"'{name}' has {value.size} values, expected {size}")
        return value

    def scalar(self, name: str) -> int:
        return int(self.ints(name, sizes=(1,)).reshape(-1)[0])

    def pair(self, name: str) -> tuple[int, int]:
        value = self.ints(name, sizes=(1, 2)).reshape(-1)
        return (int(value[0]), int(value[-1]))

    def string(self, name: str) -> str:
        value = self.array(name).reshape(-1)
        if value.size != 1 or not isinstance(value[0], bytes | str):
            raise self.fail(f"'{name}' must be one string")
        return _text(value[0], self, name)

    def shape(self, *lengths: int) -> tuple[int, ...]:
        """The positive ``shape`` field, of one of ``lengths`` dimensions."""
        value = self.ints("shape", sizes=lengths).reshape(-1)
        if np.any(value < 1):
            raise self.fail(f"shape {tuple(value)} must be positive")
        return tuple(int(v) for v in value)

    # -- attributes ------------------------------------------------------------------------
    def attr(self, name: str):
        if name not in self.group.attrs:
            raise self.fail(f"missing attribute '{name}'")
        try:
            return self.group.attrs[name]
        except (OSError, ValueError, TypeError) as exc:
            raise self.fail(f"unreadable attribute '{name}' ({exc})") from None

    def attr_int(self, name: str) -> int:
        value = np.asarray(self.attr(name))
        if value.size != 1:
            raise self.fail(f"attribute '{name}' must be one number")
        return int(self._whole(value.reshape(-1), f"attribute {name}", (1,))[0])

    def attr_float(self, name: str) -> float:
        value = np.asarray(self.attr(name))
        if value.size != 1 or value.dtype.kind not in "fiu":
            raise self.fail(f"attribute '{name}' must be one number")
        number = float(value.reshape(-1)[0])
        if not math.isfinite(number):
            raise self.fail(f"attribute '{name}' is {number}")
        return number

    def attr_string(self, name: str) -> str:
        value = self.attr(name)
        if isinstance(value, np.ndarray):
            if value.size != 1:
                raise self.fail(f"attribute '{name}' must be one string")
            value = value.reshape(-1)[0]
        if not isinstance(value, bytes | str):
            raise self.fail(f"attribute '{name}' must be a string")
        return _text(value, self, f"attribute {name}")


def _text(value: bytes | str, fields: Fields, name: str) -> str:
    if isinstance(value, bytes):
        try:
            value = value.decode("utf-8")
        except UnicodeDecodeError:
            raise fields.fail(f"'{name}' is not valid text") from None
    if len(value) > 200 or not value.isprintable():
        raise fields.fail(f"'{name}' is not a short printable name")
    return value
