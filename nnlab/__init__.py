"""nnlab: Jupyter labs on how neural networks see.

The package is a house with rooms; imports only go down this list (a test reads them):

    core                 hooks and backward rules, targets, devices, input checks, map maths
    data, models         datasets offline first; lab architectures, the lab-model zoo, ImageNet models
    attribution, features, featurevis, embedding, templates, evaluation     the algorithms, one per file
    viz                  every figure
    course, cli          build, exercises, grading, widgets; the ``nnlab`` command

The names below are importable from ``nnlab`` directly; each room is imported on first use, so ``import nnlab`` is
fast. The flat module names of nnlab 0.1 (``nnlab.cam``, ``nnlab.tsne``, ``nnlab.plot`` ...) still import, as
aliases of their new place (see ``MOVED``).
"""
import importlib.abc
import importlib.util
import sys
import warnings
from importlib import import_module

__version__ = "0.1.0"

# public name -> module that defines it (one line each; keep sorted by room)
_LAZY = {
    "capture": "core.hooks",
    "get_layer": "core.hooks",
    "relu_backward_rule": "core.hooks",
    "pretrained": "models.zoo",
    "Attribution": "attribution.base",
    "LayerOutput": "attribution.layer_output",
    "Saliency": "attribution.saliency",
    "GradientXInput": "attribution.gradient_x_input",
    "SmoothGrad": "attribution.smoothgrad",
    "GuidedBackprop": "attribution.guided_backprop",
    "Deconvnet": "attribution.guided_backprop",
    "Occlusion": "attribution.occlusion",
    "CAM": "attribution.cam",
    "GradCAM": "attribution.cam",
    "GuidedGradCAM": "attribution.cam",
    "project": "features.deconvnet",
    "project_steps": "features.deconvnet",
    "keep_feature": "features.deconvnet",
    "receptive_field_geometry": "features.receptive_fields",
    "top_activations": "features.topk",
    "TopActivations": "features.topk",
    "features_over_training": "features.training_dynamics",
    "Objective": "featurevis.objectives",
    "maximize": "featurevis.maximize",
    "visualize_activation": "featurevis.maximize",
    "TSNE": "embedding.tsne",
    "joint_probabilities": "embedding.affinities",
}

ROOMS = ("core", "data", "models", "attribution", "features", "featurevis", "embedding", "templates", "evaluation",
         "viz", "course", "cli")

# nnlab 0.1's flat modules -> their place now
MOVED = {
    "hooks": "core.hooks",
    "cam": "attribution.cam",
    "deconvnet": "features.deconvnet",
    "receptive_field": "features.receptive_fields",
    "topk": "features.topk",
    "training_dynamics": "features.training_dynamics",
    "objectives": "featurevis.objectives",
    "tsne": "embedding",
    "sanity_checks": "evaluation.sanity_checks",
    "deletion": "evaluation.perturbation",
    "pointing_game": "evaluation.pointing",
    "evaluate": "evaluation",
    "plot": "viz.images",
    "featuremaps_plot": "viz.featuremaps",
    "featurevis_plot": "viz.featurevis",
    "templates_plot": "viz.templates",
    "tsne_plot": "viz.tsne",
    "evaluate_plot": "viz.evaluation",
    "build": "course.build",
    "exercises": "course.exercises",
    "grade": "course.grade",
    "widgets": "course.widgets",
    "explain": "cli.explain",
}


class _MovedLoader(importlib.abc.Loader):
    """Makes ``import nnlab.<old>`` return the module at its new place (the same object, not a copy)."""

    def __init__(self, new: str):
        self.new = new

    def create_module(self, spec):
        module = import_module(self.new)
        self._spec = module.__spec__
        return module

    def exec_module(self, module):
        module.__spec__ = self._spec      # the import system set the alias's spec: give the module its own back


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname, path=None, target=None):
        prefix, _, old = fullname.partition(".")
        if prefix != __name__ or old not in MOVED:
            return None
        warnings.warn(f"nnlab.{old} has moved to nnlab.{MOVED[old]}", DeprecationWarning, stacklevel=2)
        return importlib.util.spec_from_loader(fullname, _MovedLoader(f"{__name__}.{MOVED[old]}"))


if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
    sys.meta_path.insert(0, _MovedFinder())


def __getattr__(name):
    if name in _LAZY:
        return getattr(import_module(f"nnlab.{_LAZY[name]}"), name)
    if name in ROOMS:
        return import_module(f"nnlab.{name}")
    if name in MOVED:
        return import_module(f"nnlab.{name}")
    raise AttributeError(f"module 'nnlab' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_LAZY) | set(ROOMS))
