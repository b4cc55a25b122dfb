"""Shared by every room: hooks and backward rules, targets, devices, input checks, map maths.

Imports nothing else of nnlab: everything else imports it.
"""

from nnlab.core.checks import (
    ModelRunError,
    check_finite,
    check_images,
    check_index,
    check_indices,
    check_number,
    check_scores,
    check_size,
    check_target,
    running,
)
from nnlab.core.device import model_device
from nnlab.core.hooks import (
    LayerSpec,
    layer_names,
    conv_layer_names,
    get_layer,
    layer_name,
    capture,
    eval_mode,
    frozen,
    assert_no_hooks,
    relu_backward_rule,
    buffers_kept,
)
from nnlab.core.maps import MODES, REDUCTIONS, reduce_channels, upsample, normalize, map_scale
from nnlab.core.progress import progress_bar, in_notebook
from nnlab.core.targets import (
    Output,
    Target,
    select_output,
    target_classes,
    target_scores,
    fixed_target,
    predicted_target,
)
