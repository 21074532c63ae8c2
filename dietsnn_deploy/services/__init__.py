"""Services: the application logic the CLI calls. Each command parses its options, calls one
service and prints what it returns. Services compose the training core, the exporters and the
simulators; nothing below them imports them.

- :mod:`.networks`: load any network file (checkpoint, netx) through a registry of formats;
- :mod:`.deploy`: quantize a checkpoint, write it, summarise the quantization;
- :mod:`.simulate`: classify test images on a backend;
- :mod:`.measure`: op counts and energy of a deployed or float network, sweeps over T;
- :mod:`.train`: training runs from command options;
- :mod:`.outputs`: output paths that never overwrite an input;
- :mod:`.demo`: the main job.
"""
