"""Activation maximisation: objectives and priors, image parameterisations, transforms, ``maximize``, and
recognisability (does an independent pixel classifier read the class image as its class?).

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
    l2,
    l2_of,
    diversity,
    gram_similarity_of,
)
from nnlab.featurevis.param import PixelImage, FourierImage, STARTS, mean_digit, start_image
from nnlab.featurevis.recognisability import Recognisability, pixel_classifier, recognisability
from nnlab.featurevis.transforms import Transform, jitter, gaussian_blur, blur, decay, clamp
