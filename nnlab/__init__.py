"""nnlab: Jupyter labs on how neural networks see.

Every algorithm lives in its own module (``nnlab.attribution``, ``nnlab.cam``, ``nnlab.tsne`` ...). The names
below are importable from ``nnlab`` directly; each module is imported on first use, so ``import nnlab`` is fast
and a student can open any module on its own.
"""
from importlib import import_module

__version__ = "0.1.0"

# public name -> module that defines it (one line each; keep sorted by module)
_LAZY = {
    "Attribution": "attribution",
    "Saliency": "attribution",
    "GradientXInput": "attribution",
    "SmoothGrad": "attribution",
    "GuidedBackprop": "attribution",
    "Deconvnet": "attribution",
    "Occlusion": "attribution",
    "LayerOutput": "attribution",
    "CAM": "cam",
    "GradCAM": "cam",
    "GuidedGradCAM": "cam",
    "project": "deconvnet",
    "project_steps": "deconvnet",
    "keep_feature": "deconvnet",
    "receptive_field_geometry": "receptive_field",
    "top_activations": "topk",
    "TopActivations": "topk",
    "features_over_training": "training_dynamics",
    "Objective": "objectives",
    "maximize": "featurevis",
    "visualize_activation": "featurevis",
    "TSNE": "tsne",
    "joint_probabilities": "tsne",
    "capture": "hooks",
    "get_layer": "hooks",
    "relu_backward_rule": "hooks",
    "pretrained": "models",
}

_SUBMODULES = {
    "data", "models", "hooks", "attribution", "cam", "deconvnet", "receptive_field", "topk",
    "training_dynamics", "objectives", "featurevis", "tsne", "templates", "templates_plot", "evaluate", "plot",
    "widgets",
    "sanity_checks", "deletion", "pointing_game", "evaluate_plot",
    "exercises", "grade", "build", "cli", "explain", "featuremaps_plot", "featurevis_plot",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(f"nnlab.{_LAZY[name]}"), name)
    if name in _SUBMODULES:
        return import_module(f"nnlab.{name}")
    raise AttributeError(f"module 'nnlab' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | _SUBMODULES)
