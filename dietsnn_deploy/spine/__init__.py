"""The spine of the toolchain: what every stage shares, and nothing that depends on a stage.

- :mod:`.loihi`: Loihi's integer formats and the one codec from float DIET quantities to them;
- :mod:`.geometry`: conv output shapes, pool folding, fan-in and fan-out, written once;
- :mod:`.network`: the typed deployed network, which validates itself;
- :mod:`.record`: what a run of it produces (host drive in, spikes and readout out);
- :mod:`.settings`: run settings (timesteps, device, precision) passed down explicitly;
- :mod:`.neurons` and :mod:`.encodings`: pluggable neuron models and input encodings.

The training core, the exporters and the simulators sit on top of this package; it imports
none of them.
"""
