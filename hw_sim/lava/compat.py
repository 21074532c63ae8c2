"""Make lava-nc 0.10.0 / lava-dl 0.6.0 importable on Python 3.11 without editing site-packages.

Call :func:`ensure_lava_importable` (or :func:`import_netx`) before anything imports ``lava``.
Three repairs, each scoped to one module and a no-op once upstream is fixed:

1. ``lava.magma.compiler.var_model`` declares dataclass fields with dataclass instances as
   defaults (``x: ByteEncoder = ByteEncoder()``). Python 3.11 rejects unhashable defaults
   ("mutable default ... use default_factory"), so every ``lava.magma`` import fails. A one-shot
   meta-path finder loads just that module from its own source with those defaults rewritten
   as ``field(default_factory=ByteEncoder)`` (same values, one fresh instance per object), then
   removes itself. No bytecode is written, so site-packages stays untouched.
2. ``lava.lib.dl.slayer/__init__`` imports ``object_detection``, which needs torchvision and
   cv2 (not installed; netx never uses it). When either is missing, an empty placeholder module
   is put in ``sys.modules`` under that name; touching any of its attributes raises an
   AttributeError that says why.
3. ``lava.magma.runtime.message_infrastructure.multiprocessing`` calls
   ``multiprocessing.set_start_method('fork')`` at import, which raises "context has already
   been set" once anything fixed the start method first (a tqdm bar does, even a disabled one).
   If the method is already 'fork', that call is skipped while the module is imported; any
   other method is an error (Lava's runtime needs fork).

The rest of slayer imports and works under torch 2.13 (checked: cuba Dense, Conv and Pool
blocks forward and backward on CPU, and their export_hdf5).
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import multiprocessing
import re
import sys
import types
from pathlib import Path

VAR_MODEL = "lava.magma.compiler.var_model"
OBJECT_DETECTION = "lava.lib.dl.slayer.object_detection"
MESSAGE_INFRASTRUCTURE = "lava.magma.runtime.message_infrastructure.multiprocessing"

# `name: ByteEncoder = ByteEncoder()` inside a dataclass body (CoreEncoder, ChipEncoder, ...).
_INSTANCE_DEFAULT = re.compile(r"(:\s*ByteEncoder\s*=\s*)ByteEncoder\(\)")
_FIELD_NAME = "_lava_compat_field"  # injected into the module namespace before its code runs


def patch_var_model_source(source: str) -> str:
    """Rewrite ``ByteEncoder()`` field defaults as ``default_factory`` fields (py3.11-valid)."""
    return _INSTANCE_DEFAULT.sub(rf"\g<1>{_FIELD_NAME}(default_factory=ByteEncoder)", source)


class _PatchedSourceLoader(importlib.abc.Loader):
    """Executes one module from its source after :func:`patch_var_model_source`."""

    def __init__(self, origin: str) -> None:
        self.origin = origin

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> None:
        return None  # default module creation

    def exec_module(self, module: types.ModuleType) -> None:
        source = patch_var_model_source(Path(self.origin).read_text(encoding="utf-8"))
        module.__dict__[_FIELD_NAME] = dataclasses.field
        exec(compile(source, self.origin, "exec"), module.__dict__)


class _VarModelFinder(importlib.abc.MetaPathFinder):
    """Meta-path finder that answers only for :data:`VAR_MODEL`."""

    def find_spec(self, fullname, path, target=None):
        if fullname != VAR_MODEL:
            return None
        spec = importlib.machinery.PathFinder.find_spec(fullname, path)
        if spec is None or spec.origin is None:
            return None
        return importlib.util.spec_from_file_location(
            fullname, spec.origin, loader=_PatchedSourceLoader(spec.origin)
        )


def _load_var_model() -> None:
    """Import ``var_model`` through the patching finder (once), then remove the finder."""
    if VAR_MODEL in sys.modules:
        return
    finder = _VarModelFinder()
    sys.meta_path.insert(0, finder)
    try:
        importlib.import_module(VAR_MODEL)
    finally:
        sys.meta_path.remove(finder)


def _object_detection_placeholder() -> types.ModuleType:
    module = types.ModuleType(OBJECT_DETECTION, "Placeholder set by hw_sim.lava.compat.")

    def __getattr__(name: str):
        raise AttributeError(
            f"{OBJECT_DETECTION}.{name} is unavailable: it needs torchvision and cv2, which are "
            "not installed (hw_sim.lava.compat replaced the module with a placeholder)"
        )

    module.__getattr__ = __getattr__
    return module


def _stub_object_detection() -> None:
    if OBJECT_DETECTION in sys.modules:
        return
    needs = ("torchvision", "cv2")
    if all(importlib.util.find_spec(name) is not None for name in needs):
        return  # the real module can be imported
    sys.modules[OBJECT_DETECTION] = _object_detection_placeholder()


def _load_message_infrastructure() -> None:
    """Import Lava's multiprocessing backend even if the start method is already 'fork'."""
    if MESSAGE_INFRASTRUCTURE in sys.modules:
        return
    method = multiprocessing.get_start_method(allow_none=True)
    if method is None:
        importlib.import_module(MESSAGE_INFRASTRUCTURE)  # Lava sets 'fork' itself
        return
    if method != "fork":
        raise RuntimeError(
            f"Lava's runtime needs the 'fork' start method, this process already uses '{method}'"
        )
    original = multiprocessing.set_start_method
    multiprocessing.set_start_method = lambda method, force=False: None  # already 'fork'
    try:
        importlib.import_module(MESSAGE_INFRASTRUCTURE)
    finally:
        multiprocessing.set_start_method = original


def ensure_lava_importable() -> None:
    """Apply the repairs (idempotent); then ``lava.magma`` and ``lava.lib.dl.netx`` import."""
    _stub_object_detection()
    _load_var_model()
    _load_message_infrastructure()


def import_netx() -> types.ModuleType:
    """Return the ``lava.lib.dl.netx`` module, importing it with the repairs in place."""
    ensure_lava_importable()
    return importlib.import_module("lava.lib.dl.netx")
