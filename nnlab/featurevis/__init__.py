"""Activation maximisation: objectives, image parameterisations, transforms, ``maximize``.

May import: nnlab.core, nnlab.data, nnlab.models.
"""

from nnlab.featurevis.maximize import Rendering, maximize, visualize_activation
from nnlab.featurevis.objectives import (
    Acts,
    Batch,
    Index,
    INPUT,
    LOGITS,
    Objective,
    logit,
    channel,
    neuron,
    total_variation_of,
    lp_norm_of,
    total_variation,
    lp_norm,
)
from nnlab.featurevis.param import PixelImage, FourierImage
from nnlab.featurevis.transforms import Transform, jitter, gaussian_blur, blur, clamp
