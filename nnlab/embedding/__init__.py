"""t-SNE from its formulas: the affinities P (:mod:`.affinities`) kept apart from the optimiser and the
scikit-learn-style estimator (:mod:`.tsne`), as openTSNE does.

May import: nnlab.core, nnlab.data, nnlab.models.
"""

from nnlab.embedding.affinities import (
    ArrayLike,
    squared_distances,
    conditional_probabilities,
    perplexity_of,
    joint_probabilities,
)
from nnlab.embedding.tsne import (
    EXACT_MAX_N,
    student_t,
    q_probabilities,
    kl_divergence,
    kl_gradient,
    pca,
    pca_init,
    TSNEStep,
    TSNE,
    knn_accuracy,
)
