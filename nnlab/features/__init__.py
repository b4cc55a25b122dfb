"""What a CNN's features respond to: receptive fields, top-k patches, the Zeiler-Fergus deconvnet
projection, features over training.

May import: nnlab.core, nnlab.data, nnlab.models.
"""

from nnlab.features.deconvnet import (
    Features,
    strongest_feature,
    keep_feature,
    project,
    Step,
    unpool,
    filter_down,
    PASS_THROUGH,
    project_steps,
)
from nnlab.features.receptive_fields import (
    GEOMETRIC,
    ELEMENTWISE,
    Geometry,
    layers_up_to,
    conv_arithmetic,
    receptive_field_geometry,
    receptive_field,
    crop,
)
from nnlab.features.topk import TopActivations, scan, top_activations
from nnlab.features.training_dynamics import (
    Snapshot,
    TrainingDynamics,
    weights,
    relative_change,
    linear_cka,
    activations,
    features_over_training,
)
