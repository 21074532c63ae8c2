"""NIR graphs (the Neuromorphic Intermediate Representation, ``nir`` 1.0.8) to and from a
:class:`~dietsnn_deploy.spine.float_network.FloatNetwork`: :mod:`.writer` and :mod:`.reader`,
the neuron codec (LIF/IF/I time constants at a step ``dt``) in :mod:`.neurons`."""

from exporters.nir.neurons import DEFAULT_DT
from exporters.nir.reader import from_nir_graph, is_nir, read_nir
from exporters.nir.writer import soft_reset_warning, to_nir_graph, write_nir

__all__ = [
    "DEFAULT_DT",
    "from_nir_graph",
    "is_nir",
    "read_nir",
    "soft_reset_warning",
    "to_nir_graph",
    "write_nir",
]
