"""Can we trust a saliency map? Three kinds of evidence, one module each (re-exported here):

| module                  | check                                                     | paper |
|-------------------------|-----------------------------------------------------------|-------|
| :mod:`nnlab.evaluation.sanity_checks` | model and data randomisation: do the maps depend on the model? | Adebayo et al., 2018 |
| :mod:`nnlab.evaluation.perturbation`      | deletion / insertion curves: do the pixels matter to the model? | Petsiuk et al., 2018 |
| :mod:`nnlab.evaluation.pointing` | does the map's maximum fall on the object?               | Zhang et al., 2016 |

Pictures of the results are in :mod:`nnlab.viz.evaluation`.

Example::

    from nnlab import evaluate
    evaluate.model_randomisation(Saliency(model), x).table()
    evaluate.deletion(model, x, attr).mean_auc
    evaluate.pointing_game(attr, boxes, size=(64, 64)).accuracy
"""

from nnlab.evaluation.perturbation import PerturbationCurve, auc, deletion, insertion, perturbation_curve, pixel_order
from nnlab.evaluation.pointing import PointingResult, box_masks, max_points, pointing_game, random_baseline
from nnlab.evaluation.sanity_checks import (
    MAP_SIMILARITIES,
    RandomisationResult,
    data_randomisation,
    model_randomisation,
    randomisable_layers,
    randomise_layers,
    rank,
    reinitialise,
    similarities,
    spearman,
    spearman_abs,
    spearman_signed,
    ssim,
)

__all__ = [
    "model_randomisation",
    "data_randomisation",
    "RandomisationResult",
    "randomise_layers",
    "randomisable_layers",
    "reinitialise",
    "similarities",
    "MAP_SIMILARITIES",
    "spearman",
    "spearman_abs",
    "spearman_signed",
    "ssim",
    "rank",
    "deletion",
    "insertion",
    "perturbation_curve",
    "PerturbationCurve",
    "auc",
    "pixel_order",
    "pointing_game",
    "PointingResult",
    "random_baseline",
    "box_masks",
    "max_points",
]
