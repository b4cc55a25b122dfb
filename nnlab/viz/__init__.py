"""Every figure: ``show_*`` draws images, ``plot_*`` draws charts. Plotting only; the maths lives below.

May import: every room but nnlab.course and nnlab.cli.

Importing this room applies the course's figure style once (:func:`style`: fonts >= 8 pt, perceptual colour maps,
retina output in Jupyter); the labs import it through ``nnlab.course.widgets``.
"""

from nnlab.viz.evaluation import (
    MEASURE_NAMES,
    plot_similarity,
    show_randomised_maps,
    plot_curves,
    show_perturbation_steps,
    plot_pointing_game,
    show_pointing,
)
from nnlab.viz.featuremaps import (
    mosaic,
    show_filters,
    show_feature_maps,
    show_random_feature_maps,
    show_top_activations,
    show_projection_steps,
    show_projections,
    plot_layer_change,
    show_features_over_training,
)
from nnlab.viz.featurevis import show_images, plot_term_history, show_units_and_patches
from nnlab.viz.images import (
    MAGNITUDE_CMAP,
    SIGNED_CMAP,
    BANNED_CMAPS,
    RC,
    style,
    to_numpy_image,
    show_image,
    show_map,
    overlay,
    draw_contour,
    gallery,
)
from nnlab.viz.templates import show_template, show_templates, show_hidden_unit, show_top_units, show_neighbours
from nnlab.viz.tsne import (
    class_colors,
    spread_out,
    plot_embedding,
    plot_embedding_history,
    animate_history,
    plot_neighbourhood,
)

style()
