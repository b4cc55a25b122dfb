"""Receptive fields: hand-computed values (padding at the border included), and the support of the gradient."""
import pytest
import torch
import torch.nn as nn

from nnlab.features import crop, layers_up_to, receptive_field, receptive_field_geometry


class MnistLike(nn.Module):
    """conv 5x5 pad 2 | pool 2 | conv 3x3 pad 1 | pool 2 | conv 3x3 pad 1 | GAP | fc, on 28x28."""

    def __init__(self):
        super().__init__()
        self.conv1, self.relu1, self.pool1 = nn.Conv2d(1, 2, 5, padding=2), nn.ReLU(), nn.MaxPool2d(2)
        self.conv2, self.relu2, self.pool2 = nn.Conv2d(2, 2, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)
        self.conv3, self.relu3 = nn.Conv2d(2, 2, 3, padding=1), nn.ReLU()
        self.gap, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(2, 3)


def test_hand_computed_geometry():
    model = MnistLike()
    # size R += d(k-1) J ; start S -= p J ; jump J *= s
    assert receptive_field_geometry(model, "conv1") == ((5, 5), (1, 1), (-2, -2))
    assert receptive_field_geometry(model, "pool1") == ((6, 6), (2, 2), (-2, -2))
    assert receptive_field_geometry(model, "conv2") == ((10, 10), (2, 2), (-4, -4))
    assert receptive_field_geometry(model, "relu2") == ((10, 10), (2, 2), (-4, -4))
    assert receptive_field_geometry(model, "pool2") == ((12, 12), (4, 4), (-4, -4))
    assert receptive_field_geometry(model, "conv3") == ((20, 20), (4, 4), (-8, -8))


def test_hand_computed_boxes_with_padding_at_the_border():
    model = MnistLike()
    # conv1 unit (0, 0) sees rows/cols -2..2: two of its five rows and columns are padding
    assert receptive_field(model, "conv1", (0, 0)) == (-2, -2, 3, 3)
    assert receptive_field(model, "conv1", (0, 0), input_size=(28, 28)) == (0, 0, 3, 3)
    # conv2 unit (row 3, col 13): rows 2..11, cols 22..31 (cols 28..31 are padding)
    assert receptive_field(model, "conv2", (3, 13)) == (22, 2, 32, 12)
    assert receptive_field(model, "conv2", (3, 13), input_size=(28, 28)) == (22, 2, 28, 12)
    # conv3 unit (6, 6) sees 16..35: only 16..27 is image
    assert receptive_field(model, "conv3", (6, 6)) == (16, 16, 36, 36)
    assert receptive_field(model, "conv3", (6, 6), input_size=(28, 28)) == (16, 16, 28, 28)
    assert receptive_field(model, "conv3", (3, 3), input_size=(28, 28)) == (4, 4, 24, 24)


def test_stride_dilation_and_rectangular_kernels():
    model = nn.Sequential(nn.Conv2d(1, 1, (3, 5), stride=(2, 1), padding=(1, 0)), nn.ReLU(),
                          nn.Conv2d(1, 1, 3, dilation=2, padding=2), nn.MaxPool2d(3, stride=2, padding=1))
    # layer 0: R=(3,5) J=(2,1) S=(-1,0); layer 2: R=(3+2*2*2, 5+2*2*1)=(11,9), S=(-1-2*2, 0-2*1)=(-5,-2), J same;
    # layer 3: R=(11+2*2, 9+2*1)=(15,11), S=(-5-1*2, -2-1*1)=(-7,-3), J=(4,2)
    assert receptive_field_geometry(model, "0") == ((3, 5), (2, 1), (-1, 0))
    assert receptive_field_geometry(model, "2") == ((11, 9), (2, 1), (-5, -2))
    assert receptive_field_geometry(model, "3") == ((15, 11), (4, 2), (-7, -3))
    assert receptive_field(model, "3", (2, 1)) == (-1, 1, 10, 16)


@pytest.mark.parametrize("position", [(0, 0), (2, 3), (4, 4)])
def test_box_is_the_support_of_the_gradient(position):
    """With positive weights and average pooling, a unit's input gradient is non-zero exactly on its field."""
    model = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.AvgPool2d(2), nn.Conv2d(1, 1, 3, stride=2, padding=2),
                          nn.Conv2d(1, 1, 2, dilation=1, padding=1))
    for m in model:
        if isinstance(m, nn.Conv2d):
            nn.init.constant_(m.weight, 1.0)
    x = torch.rand(1, 1, 20, 20, requires_grad=True)
    out = model(x)
    out[0, 0, position[0], position[1]].backward()
    rows, cols = torch.nonzero(x.grad[0, 0], as_tuple=True)
    support = (cols.min().item(), rows.min().item(), cols.max().item() + 1, rows.max().item() + 1)
    assert receptive_field(model, "3", position, input_size=(20, 20)) == support


def test_layers_and_errors():
    model = MnistLike()
    assert [n for n, _ in layers_up_to(model, "pool2")] == ["conv1", "relu1", "pool1", "conv2", "relu2", "pool2"]
    with pytest.raises(ValueError, match="whole image"):
        receptive_field_geometry(model, "fc")
    with pytest.raises(ValueError, match="candidates"):
        receptive_field(model, "conv4", (0, 0))


def test_crop_pads_outside_the_image_with_zeros():
    image = torch.arange(1, 26, dtype=torch.float).view(1, 5, 5)
    patch = crop(image, (-2, -1, 3, 2))  # left, top, right, bottom
    assert patch.shape == (1, 3, 5)
    assert torch.equal(patch[0, 0], torch.zeros(5))
    assert torch.equal(patch[0, 1:, 2:], image[0, :2, :3])
    assert patch[0, 1:, :2].abs().sum() == 0
    assert torch.equal(crop(image, (1, 1, 4, 3)), image[:, 1:3, 1:4])


def test_receptive_field_goes_through_relu6_and_hardtanh():
    import torch.nn as nn
    from nnlab.features import receptive_field_geometry
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU6(),
                        nn.Conv2d(4, 4, 3, stride=2, padding=1), nn.Hardtanh(0, 6), nn.Conv2d(4, 4, 3, padding=1))
    assert receptive_field_geometry(net, "5") == ((9, 9), (2, 2), (-4, -4))
