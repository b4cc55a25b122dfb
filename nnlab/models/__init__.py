"""Lab architectures, the lab-model zoo and its verified cache, ImageNet models with their own
normalisation, training.

May import: nnlab.core, nnlab.data.
"""

from nnlab.models.architectures import (
    LogisticRegression,
    MLP,
    MnistCNN,
    ClutteredCNN,
    BoxRegressor,
    OrientationCNN,
    fold_batch_norm,
)
from nnlab.models.dense_cnn import DenseCNN
from nnlab.models.imagenet import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    imagenet_normalize,
    imagenet_denormalize,
    imagenet_classes,
    imagenet_weights_available,
    imagenet_model,
    default_imagenet_model,
    efficientnet_lite0,
    efficientnet_lite0_checkpoint,
    map_efficientnet_lite0_state_dict,
    input_normalization,
    NORMALIZATION,
    DEFAULT_IMAGENET_MODEL,
    Normalized,
)
from nnlab.models.training import accuracy, random_shift, train_classifier
from nnlab.models.zoo import (
    ModelSpec,
    REGISTRY,
    register,
    seeded,
    model_path,
    pretrained,
    main,
    WeightsError,
    WEIGHTS_DIR,
    shipped_manifest,
    verify_shipped,
    ship,
    compare,
)
