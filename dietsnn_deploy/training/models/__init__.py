"""DIET-SNN architectures: one set of weights that runs as a ReLU ANN or as a LIF SNN.

ANN and SNN share every weight, so the three training stages (ANN → conversion → DIET) move a
single module through modes. Layer indexing follows the official DIET-SNN code
(``features.<i>``, ``classifier.<j>``, ``threshold.t<i>``, ``leak.l<i>``) so its checkpoints
load into these modules as they are.

The SNN runs layer by layer over all T steps at once ("bulk"): every synapse sees a (T·B, …)
batch and only the neuron recurrence loops over T. With a static encoding (direct input) the
first conv's output is the same at every step and is computed once. ``bulk=False`` runs the
plain loop (every layer, every step) and gives the same spikes; it exists to check and time
the bulk path. The neuron model (:mod:`dietsnn_deploy.spine.neurons`) and the input encoding
(:mod:`dietsnn_deploy.spine.encodings`) are units the model dispatches to; T is an argument
of every run, never a property of the model.
"""

from dietsnn_deploy.training.models.archs import ARCHITECTURES, build_model
from dietsnn_deploy.training.models.net import MIN_THRESHOLD, DietNet, SNNOutput
from dietsnn_deploy.training.models.resnet import DietResNet
from dietsnn_deploy.training.models.spec import ArchSpec
from dietsnn_deploy.training.models.vgg import DietVGG

__all__ = [
    "ARCHITECTURES",
    "MIN_THRESHOLD",
    "ArchSpec",
    "DietNet",
    "DietResNet",
    "DietVGG",
    "SNNOutput",
    "build_model",
]
