"""Write and read a :class:`DeployedNetwork` as a lava-dl netx HDF5 file.

Layout (what ``lava.lib.dl.netx.hdf5.Network`` reads; it ignores everything else):

- ``/layer/<i>`` for i = 0..N-1, one group per :attr:`DeployedNetwork.layers` entry, with
  ``type`` (``S10`` array of one ASCII string: input, conv, flatten, dense); ``shape`` (C, H, W)
  or (n,) for layers with neurons; conv ``weight`` (Cout, Cin, kH, kW), ``stride``,
  ``padding``, ``dilation`` as (H, W) and scalar ``groups``; dense ``weight`` (out, in); and a
  ``neuron`` group written by the layer's neuron model (:mod:`dietsnn_deploy.spine.neurons`;
  the LIF: ``type`` CUBA, ``iDecay`` 4096, ``vDecay``, ``vThMant``, ``refDelay`` 1,
  ``gradedSpike`` False, never ``messageBits``: netx breaks on it).
  The input layer stores no weight or bias: its drive is injected at run time.
- ``/dietsnn`` (ignored by netx): what a rerun needs (:mod:`.metadata`).

A netx file without ``/dietsnn`` has no encoder, so :func:`read_netx` refuses it (it could
not turn images into drive); :func:`read_netx_layers` reads the layers of any such file.
Weight rules (8-bit, even when mixed-sign, a positive entry in every dense matrix) are the
spine's (:func:`dietsnn_deploy.spine.loihi.check_weight_mantissas`): netx's
``optimize_weight_bits`` followed by Lava's Dense reproduces any such matrix exactly.
"""

from exporters.netx.metadata import FORMAT_VERSION, METADATA_GROUP
from exporters.netx.reader import read_netx, read_netx_layers
from exporters.netx.writer import write_netx

__all__ = [
    "FORMAT_VERSION",
    "METADATA_GROUP",
    "read_netx",
    "read_netx_layers",
    "write_netx",
]
