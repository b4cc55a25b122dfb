"""Images as vectors: similarities, nearest neighbours, linear and hidden-unit templates (labs 01-02).

May import: nnlab.core, nnlab.data, nnlab.models.
"""

from nnlab.templates.lab_data import downsample, split_per_class, lab_faces, lab_digits
from nnlab.templates.similarity import (
    flatten,
    unflatten,
    dot_product,
    euclidean_distance,
    cosine_similarity,
    VECTOR_SIMILARITIES,
    Similarity,
    similarity,
    standardise,
    nearest_neighbours,
    nearest_neighbour_predict,
    NearestNeighbour,
    NearestNeighbor,
)
from nnlab.templates.training import train_logistic_regression, train_hidden_layer
from nnlab.templates.weights import roughness, template_noise, outgoing_weights, top_hidden_units
