"""The Lava side: the only package that imports Lava.

- :mod:`.compat`: makes lava-nc 0.10 / lava-dl 0.6 importable on Python 3.11;
- :mod:`.processes`: our own Lava processes (memmap frame source and sink; later models);
- :mod:`.lifecycle`: runtime processes that die with their parent, signals deferred to safe
  points, a watchdog for a runtime whose process died;
- :mod:`.runner`: run a deployed network on Lava's CPU simulator, bit-exact.

Lava's compiler executes every ``.py`` file next to a Process class whose model it has to
discover. Our processes are always mapped to their models by instance
(``exception_proc_model_map``), so it never scans this folder.
"""
