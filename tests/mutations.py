"""Mutations of valid checkpoint and netx files, and the verdict of a command run on them.

Shared by the property tests (``test_fuzz_readers.py``, a bounded number of examples) and the
fuzz command (``benchmarks/fuzz_readers.py``, many). A mutation is drawn from a seed:

- ``delete``: a dataset, group or attribute (netx), a key anywhere in the payload (checkpoint);
- ``retype``: a value replaced by one of another type (text, number, bool, list, empty array);
- ``reshape``: an array flattened, given an axis, cut short or doubled;
- ``nonfinite``: one element made NaN or ±inf;
- ``truncate``: the file cut at a random byte;
- ``bitflip``: 1 to 8 random bits of the file flipped.

A run's verdict is ``same`` (exactly the original output), ``error`` (exit 2 with one
``error:`` line, no traceback), or a failure: ``traceback``, ``hang`` or ``different``.
"""

from __future__ import annotations

import contextlib
import io
import json
import signal
import sys
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np
import torch

from dietsnn_deploy import cli

KINDS = ("delete", "retype", "reshape", "nonfinite", "truncate", "bitflip")
VERDICTS_OK = ("same", "error")
_REPLACEMENTS = (b"garbage", "text", 2.5, -7, True, np.zeros(0), np.array([b"a", b"b"]), 1e300)


def run_cli(*args: str, timeout: int = 60) -> tuple[int, str, str]:
    """Run ``cli.main`` in-process with ``args``; (exit code, stdout, stderr). An exception
    that escapes ``main`` propagates (the console script would print a traceback); a run
    longer than ``timeout`` seconds raises TimeoutError."""
    out, err = io.StringIO(), io.StringIO()

    def alarm(signum, frame):
        raise TimeoutError(f"no answer within {timeout} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(timeout)
    argv, sys.argv = sys.argv, ["dietsnn-deploy", *args]
    code = 0
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            cli.main()
    except SystemExit as exc:
        code = int(exc.code or 0)
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        sys.argv = argv
    return code, out.getvalue(), err.getvalue()


def verdict(run: Callable[[], tuple[int, str, str]], original: dict) -> tuple[str, str]:
    """(verdict, detail) of ``run`` (a :func:`run_cli` call printing ``--json``) against the
    original run's JSON ``original`` (its timing fields ignored)."""
    try:
        code, out, err = run()
    except TimeoutError as exc:
        return "hang", str(exc)
    except Exception as exc:  # noqa: BLE001 - an escaped exception is the finding
        return "traceback", f"{type(exc).__name__}: {str(exc)[:200]}"
    lines = err.strip().splitlines()
    if code == 2 and len(lines) == 1 and lines[0].startswith("error: "):
        return "error", lines[0]
    if code != 0:
        return "traceback", f"exit {code}: {err.strip()[-300:]}"
    if comparable(json.loads(out)) == comparable(original):
        return "same", ""
    return "different", out[:200]


def comparable(report: dict) -> dict:
    """A ``simulate --json`` report without what legitimately varies (time, file name)."""
    return {k: v for k, v in report.items() if k not in ("seconds_per_image", "network")}


# --- netx (HDF5) ---------------------------------------------------------------------------


def _hdf5_items(f: h5py.File) -> list[tuple[str, str | None]]:
    """(path, attribute name or None) of every dataset, group and attribute."""
    items: list[tuple[str, str | None]] = []

    def visit(name, obj):
        items.append((name, None))
        items.extend((name, attr) for attr in obj.attrs)

    f.visititems(visit)
    return items


def _replacement(rng: np.random.Generator):
    return _REPLACEMENTS[rng.integers(len(_REPLACEMENTS))]


def _reshaped(value: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    flat = value.reshape(-1)
    choices = [flat, value[None], flat[:-1], np.concatenate([flat, flat])]
    return choices[rng.integers(len(choices))]


def _nonfinite(value: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    out = np.array(value, dtype=np.float64).reshape(-1)
    if out.size:
        out[rng.integers(out.size)] = (np.nan, np.inf, -np.inf)[rng.integers(3)]
    return out.reshape(np.shape(value))


def mutate_netx(source: Path, target: Path, kind: str, seed: int) -> str:
    """Write a mutated copy of the netx file ``source`` to ``target``; a description."""
    rng = np.random.default_rng(seed)
    data = source.read_bytes()
    if kind in ("truncate", "bitflip"):
        return _mutate_bytes(data, target, kind, rng)
    target.write_bytes(data)
    with h5py.File(target, "a") as f:
        items = _hdf5_items(f)
        path, attr = items[rng.integers(len(items))]
        owner = f[path]
        if kind == "delete":
            if attr is None:
                del f[path]
            else:
                del owner.attrs[attr]
            return f"delete {path}{'@' + attr if attr else ''}"
        if attr is not None:
            value = np.asarray(owner.attrs[attr])
            new = _changed(value, kind, rng)
            owner.attrs[attr] = new
            return f"{kind} {path}@{attr}"
        if not isinstance(owner, h5py.Dataset):
            return f"{kind} of group {path}: unchanged"
        new = _changed(np.asarray(owner[()]), kind, rng)
        del f[path]
        f[path] = new
        return f"{kind} {path}"


def _changed(value: np.ndarray, kind: str, rng: np.random.Generator):
    if kind == "retype":
        return _replacement(rng)
    if value.dtype.kind not in "biuf" or value.size == 0:
        return _replacement(rng)
    return _reshaped(value, rng) if kind == "reshape" else _nonfinite(value, rng)


def _mutate_bytes(data: bytes, target: Path, kind: str, rng: np.random.Generator) -> str:
    if kind == "truncate":
        cut = int(rng.integers(len(data)))
        target.write_bytes(data[:cut])
        return f"truncate at {cut} of {len(data)}"
    flipped = bytearray(data)
    positions = rng.integers(len(data) * 8, size=int(rng.integers(1, 9)))
    for bit in positions:
        flipped[bit // 8] ^= 1 << (bit % 8)
    target.write_bytes(bytes(flipped))
    return f"bitflip {len(positions)} bits"


# --- checkpoints ---------------------------------------------------------------------------


def _payload_paths(value, prefix=()) -> list[tuple]:
    """Key paths of every value in a nested dict/list payload."""
    paths = []
    if isinstance(value, dict):
        for key, item in value.items():
            paths.append((*prefix, key))
            paths += _payload_paths(item, (*prefix, key))
    elif isinstance(value, list):
        for index, item in enumerate(value):
            paths.append((*prefix, index))
            paths += _payload_paths(item, (*prefix, index))
    return paths


def _changed_value(value, kind: str, rng: np.random.Generator):
    if kind == "retype" or not isinstance(value, torch.Tensor | float | int):
        pick = _replacement(rng)
        return torch.tensor([1.0]) if isinstance(pick, np.ndarray) else pick
    if isinstance(value, float | int) and not isinstance(value, bool):
        return float(_nonfinite(np.array([value]), rng)[0]) if kind == "nonfinite" else [value]
    array = value.detach().numpy()
    changed = _reshaped(array, rng) if kind == "reshape" else _nonfinite(array, rng)
    return torch.from_numpy(np.ascontiguousarray(changed)).to(value.dtype)


def mutate_checkpoint(
    source: Path, target: Path, kind: str, seed: int, resign: Callable[[dict], None] | None = None
) -> str:
    """Write a mutated copy of the checkpoint ``source`` to ``target``; ``resign`` (given the
    payload) recomputes its digest, as a tool that rewrites a field would."""
    rng = np.random.default_rng(seed)
    if kind in ("truncate", "bitflip"):
        return _mutate_bytes(source.read_bytes(), target, kind, rng)
    payload = torch.load(source, weights_only=True)
    paths = _payload_paths(payload)
    path = paths[rng.integers(len(paths))]
    parent = payload
    for key in path[:-1]:
        parent = parent[key]
    if kind == "delete":
        del parent[path[-1]]
    else:
        parent[path[-1]] = _changed_value(parent[path[-1]], kind, rng)
    if resign is not None:
        resign(payload)
    torch.save(payload, target)
    return f"{kind} {'/'.join(map(str, path))}"
