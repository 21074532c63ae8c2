"""Input encodings, each one unit: what the first layer sees at every step.

Training runs the model's first conv on :meth:`~.base.Encoding.frames`; the host computes the
deployed input layer's drive from the same frames; the emulator and the Lava runner inject a
drive that is constant (static encodings) or changes every step; the op counter prices each
step by :meth:`~.base.Encoding.step_kinds`. A new encoding is one module plus its line here.
"""

from __future__ import annotations

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.encodings.base import ANALOG, BINARY, REPEAT, Encoding
from dietsnn_deploy.spine.encodings.direct import Direct
from dietsnn_deploy.spine.encodings.hybrid import Hybrid
from dietsnn_deploy.spine.encodings.poisson import Poisson

ENCODINGS: dict[str, Encoding] = {e.name: e for e in (Direct(), Poisson(), Hybrid())}


def get_encoding(name: str) -> Encoding:
    """The encoding called ``name``."""
    if not isinstance(name, str) or name not in ENCODINGS:
        raise DeployError(f"unknown input encoding {name!r}; choose from {', '.join(ENCODINGS)}")
    return ENCODINGS[name]


__all__ = [
    "ANALOG",
    "BINARY",
    "ENCODINGS",
    "REPEAT",
    "Direct",
    "Encoding",
    "Poisson",
    "get_encoding",
]
