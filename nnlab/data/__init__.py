"""Datasets found offline first (``$NNLAB_DATA``, ``data/``), image files and photographs, cluttered MNIST.

May import: nnlab.core.
"""

from nnlab.data.cluttered import digit_box, cluttered_mnist
from nnlab.data.datasets import (
    REPO_ROOT,
    MNIST_CLASSES,
    FASHION_CLASSES,
    ImageSet,
    data_dirs,
    cache_dir,
    atomic_write_bytes,
    sha256,
    parse_idx,
    mnist,
    fashion_mnist,
    has_fashion_mnist,
    faces,
)
from nnlab.data.fingerprint import fingerprint
from nnlab.data.images import IMAGE_SUFFIXES, load_image, photos
from nnlab.data.orientation import orientation_crops, ORIENTATION_TEST_PHOTOS, orientation_images
