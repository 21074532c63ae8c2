"""The training core: architectures (:mod:`.models`), the epoch loop (:mod:`.loop`), the
three DIET stages (:mod:`.stages`), resumable pipeline (:mod:`.pipeline`), checkpoints
(:mod:`.checkpoints`, :mod:`.checkpoint_schema`), hardware-aware fine-tuning
(:mod:`.hardware_aware`) and the quantizer that turns a trained model into the spine's
deployed network (:mod:`.quantize`). It never imports the exporters or the simulators.
"""
