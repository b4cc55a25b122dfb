"""Which pixels does the target score depend on? Gradient methods, guided backprop / deconvnet,
occlusion, and the CAM family.

| method           | attr                                                   | paper |
|------------------|--------------------------------------------------------|-------|
| `Saliency`       | d score / d x                                          | Simonyan et al., 2014 |
| `GradientXInput` | x * d score / d x                                      | Shrikumar et al., 2016 |
| `SmoothGrad`     | mean of d score / d x over noisy copies of x           | Smilkov et al., 2017 |
| `GuidedBackprop` | gradient with the "guided" ReLU backward rule          | Springenberg et al., 2015 |
| `Deconvnet`      | gradient with the "deconvnet" ReLU backward rule       | Zeiler & Fergus, 2014 |
| `Occlusion`      | drop of the score when a window of x is covered        | Zeiler & Fergus, 2014 |
| `CAM`, `GradCAM`, `GuidedGradCAM` | a layer map (N, 1, h, w)              | Zhou 2016, Selvaraju 2017 |

Every method: ``attr = Method(model, ...).attribute(x, target=None)``. To explain a neuron or a channel inside the
network, wrap the model in ``LayerOutput(model, layer)`` and pass a callable target.

May import: nnlab.core, nnlab.data, nnlab.models.
"""

from nnlab.attribution.base import Attribution
from nnlab.attribution.layer_output import LayerOutput
from nnlab.attribution.saliency import Saliency
from nnlab.attribution.gradient_x_input import GradientXInput
from nnlab.attribution.smoothgrad import SmoothGrad
from nnlab.attribution.guided_backprop import GuidedBackprop, Deconvnet
from nnlab.attribution.occlusion import Occlusion
from nnlab.attribution.cam import BaseCAM, CAM, GradCAM, GuidedGradCAM, last_feature_layer
