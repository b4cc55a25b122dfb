"""The pointing game (Zhang et al., 2016): exact hits on hand-made maps and boxes, a perfect map scores 1.0 and
a random map scores the box-area share, on random boxes and on cluttered MNIST."""
import pytest
import torch

from nnlab.evaluation import PointingResult, box_masks, max_points, pointing_game, random_baseline


def test_box_masks_right_and_bottom_are_exclusive_and_tolerance_is_euclidean():
    box = torch.tensor([[1., 2, 3, 4]])                  # columns 1..2, rows 2..3
    mask = box_masks(box, (6, 5))[0]
    assert mask.sum() == 4
    assert mask[2:4, 1:3].all()
    grown = box_masks(box, (6, 5), tolerance=1)[0]
    assert grown[1, 1] and grown[2, 0] and grown[2, 3] and grown[4, 2]    # one pixel away: hits
    assert not grown[1, 0] and not grown[4, 3]                            # diagonal: sqrt(2) > 1
    assert grown.sum() == 4 + 2 * 2 + 2 * 2


def test_max_points_finds_the_maximum_and_upsamples_layer_maps():
    attr = torch.zeros(2, 1, 5, 7)
    attr[0, 0, 3, 6] = 1
    attr[1, 0, 0, 2] = 2
    assert max_points(attr).tolist() == [[3, 6], [0, 2]]
    layer_map = torch.tensor([[[[0., 1], [0, 3]]]])                       # maximum in the bottom-right cell
    row, col = max_points(layer_map, size=(8, 8))[0].tolist()
    assert row >= 4 and col >= 4
    channels = torch.zeros(1, 3, 4, 4)
    channels[0, :, 1, 2] = torch.tensor([1., 1, 1])                        # sum over channels: 3 at (1, 2)
    channels[0, 0, 3, 3] = 2.5
    assert max_points(channels).tolist() == [[1, 2]]


def test_hits_and_misses_on_hand_made_maps():
    boxes = torch.tensor([[0., 0, 2, 2], [2, 2, 4, 4], [0, 0, 1, 1]])
    attr = torch.zeros(3, 1, 4, 4)
    attr[0, 0, 1, 1] = 1          # inside
    attr[1, 0, 1, 1] = 1          # outside, diagonal neighbour of the box
    attr[2, 0, 0, 1] = 1          # outside, next to the box
    result = pointing_game(attr, boxes)
    assert isinstance(result, PointingResult)
    assert result.hits.tolist() == [True, False, False]
    assert result.accuracy == pytest.approx(1 / 3)
    assert pointing_game(attr, boxes, tolerance=1).hits.tolist() == [True, False, True]
    assert pointing_game(attr, boxes, tolerance=1.5).hits.tolist() == [True, True, True]


def random_boxes(n, canvas, seed):
    g = torch.Generator().manual_seed(seed)
    size = torch.randint(8, 29, (n, 2), generator=g)
    corner = (torch.rand(n, 2, generator=g) * (canvas - size + 1)).floor()
    return torch.cat([corner, corner + size], dim=1).float()           # (left, top, right, bottom)


def test_a_perfect_map_scores_one_and_a_random_map_scores_the_box_area_share():
    boxes = random_boxes(4000, 64, seed=0)
    perfect = box_masks(boxes, (64, 64)).float()[:, None]             # the true box as the map
    assert pointing_game(perfect, boxes).accuracy == 1.0
    noise = torch.rand(4000, 1, 64, 64, generator=torch.Generator().manual_seed(1))
    share = random_baseline(boxes, (64, 64))
    assert 0.05 < share < 0.3
    # binomial standard deviation sqrt(p (1 - p) / 4000) < 0.008: allow 4 of them
    assert pointing_game(noise, boxes).accuracy == pytest.approx(share, abs=0.03)


def test_on_cluttered_mnist_perfect_and_random_maps():
    from nnlab import data

    digits = data.cluttered_mnist(1000, split="test", seed=1)
    size = digits.images.shape[-2:]
    perfect = box_masks(digits.boxes, size).float()[:, None]
    assert pointing_game(perfect, digits.boxes).accuracy == 1.0
    share = random_baseline(digits.boxes, size)
    noise = torch.rand(1000, 1, 8, 8, generator=torch.Generator().manual_seed(0))   # layer-sized random maps
    # std of the hit rate over 1000 images < 0.012: allow 4 of them
    assert pointing_game(noise, digits.boxes, size=size).accuracy == pytest.approx(share, abs=0.05)
    assert pointing_game(digits.images, digits.boxes).accuracy > share     # the brightest pixel: often the digit


def test_bad_arguments_raise_value_error():
    with pytest.raises(ValueError, match=r"\(N, 4\)"):
        pointing_game(torch.rand(2, 1, 4, 4), torch.rand(2, 3))
    with pytest.raises(ValueError, match="maps for"):
        pointing_game(torch.rand(3, 1, 4, 4), torch.rand(2, 4))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        max_points(torch.rand(4, 4))
