"""Dataset metrics against a confusion matrix worked out by hand; ground-truth masks; the plot."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from npdeeplab.dataset.masks import load_mask, match_masks, read_label_map
from npdeeplab.dataset.metrics import confusion_matrix, scores
from npdeeplab.dataset.plot import plot_confusion
from npdeeplab.errors import ImageError, InputError
from npdeeplab.segmentation.palette import mask_image

TRUTH = np.array([[0, 0, 1, 1], [2, 255, 2, 0]], np.uint8)  # 255: not counted
PREDICTED = np.array([[0, 3, 1, 0], [0, 1, 2, 0]], np.uint8)  # class 3 predicted once, absent from the truth


def test_confusion_matrix_by_hand():
    confusion = confusion_matrix(TRUTH, PREDICTED, 4)
    assert confusion.tolist() == [[2, 0, 0, 1],  # truth 0: twice right, once called 3
                                  [1, 1, 0, 0],
                                  [1, 0, 1, 0],
                                  [0, 0, 0, 0]]  # the ignored pixel (predicted 1) counts nowhere


def test_scores_by_hand():
    found = scores(confusion_matrix(TRUTH, PREDICTED, 4))
    # IoU = TP / (row + column - TP): 2 / (3 + 4 - 2), 1 / (2 + 1 - 1), 1 / (2 + 1 - 1); class 3 absent
    assert found.iou == pytest.approx([0.4, 0.5, 0.5, None])
    assert found.iou[3] is None
    assert found.miou == pytest.approx((0.4 + 0.5 + 0.5) / 3)  # over the classes in the ground truth
    assert found.pixel_accuracy == pytest.approx(4 / 7)
    assert found.fw_iou == pytest.approx(3 / 7 * 0.4 + 2 / 7 * 0.5 + 2 / 7 * 0.5)
    assert found.pixels == 7


def test_an_empty_prediction_scores_zero_and_an_empty_truth_scores_nothing():
    truth = np.ones((3, 3), np.uint8)
    found = scores(confusion_matrix(truth, np.zeros_like(truth), 2))  # class 1 never predicted
    assert found.iou == [None, 0.0] and found.miou == 0.0 and found.pixel_accuracy == 0.0 and found.fw_iou == 0.0
    nothing = scores(confusion_matrix(np.full((2, 2), 255, np.uint8), np.zeros((2, 2), np.uint8), 3))
    assert nothing.iou == [None, None, None] and nothing.miou is None and nothing.pixel_accuracy is None
    assert nothing.pixels == 0


def test_summing_confusions_is_the_dataset_score():
    """Two images' matrices add up: the dataset's IoU is not the mean of per-image IoUs."""
    a, b = confusion_matrix(TRUTH, PREDICTED, 4), confusion_matrix(PREDICTED, PREDICTED, 4)
    both = confusion_matrix(np.concatenate([TRUTH, PREDICTED]), np.concatenate([PREDICTED, PREDICTED]), 4)
    assert (a + b).tolist() == both.tolist()


def test_an_id_over_the_classes_is_refused():
    with pytest.raises(InputError, match="under 3"):
        confusion_matrix(np.array([[5]]), np.array([[0]]), 3)


def test_masks_palette_grey_and_label_map(tmp_path):
    labels = np.array([[0, 15, 255], [3, 3, 0]], np.uint8)
    mask_image(labels).save(tmp_path / "voc.png")  # VOC's SegmentationClass format
    Image.fromarray(labels, "L").save(tmp_path / "grey.png")
    Image.fromarray(np.repeat(labels[..., None], 3, axis=2), "RGB").save(tmp_path / "grey_rgb.png")
    for name in ("voc.png", "grey.png", "grey_rgb.png"):
        assert load_mask(tmp_path / name, 21).tolist() == labels.tolist()
    (tmp_path / "map.json").write_text(json.dumps({"15": 1, "3": 2}))
    mapped = load_mask(tmp_path / "grey.png", 21, read_label_map(tmp_path / "map.json"))
    assert mapped.tolist() == [[255, 1, 255], [2, 2, 255]]  # unmapped ids (0, 255) are ignored


@pytest.mark.parametrize("case", ["colour", "id", "text"])
def test_bad_masks_say_why(case, tmp_path):
    path = tmp_path / "m.png"
    if case == "colour":
        Image.fromarray(np.array([[[255, 0, 0]]], np.uint8), "RGB").save(path)
    elif case == "id":
        Image.fromarray(np.array([[40]], np.uint8), "L").save(path)
    else:
        path.write_text("no")
    expected = {"colour": "in colour", "id": "class id 40, but the model has 21 classes", "text": "not an image"}
    with pytest.raises(ImageError, match=expected[case]):
        load_mask(path, 21)


def test_a_bad_label_map_is_one_error(tmp_path):
    (tmp_path / "map.json").write_text("[1, 2]")
    with pytest.raises(InputError, match="JSON object"):
        read_label_map(tmp_path / "map.json")
    with pytest.raises(InputError, match="does not exist"):
        read_label_map(tmp_path / "none.json")


def test_masks_match_images_by_stem(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "gt").mkdir()
    for stem in ("a", "b", "c"):
        Image.new("RGB", (4, 4)).save(tmp_path / "img" / f"{stem}.jpg")
    for stem in ("a", "c", "z"):
        Image.new("L", (4, 4)).save(tmp_path / "gt" / f"{stem}_gtFine_labelIds.png")
    matched = match_masks(tmp_path / "img", tmp_path / "gt", "_gtFine_labelIds")
    assert [(i.path.stem, m.name) for i, m in matched.pairs] == [("a", "a_gtFine_labelIds.png"),
                                                                  ("c", "c_gtFine_labelIds.png")]
    assert [i.path.name for i in matched.without_mask] == ["b.jpg"]
    assert [m.name for m in matched.without_image] == ["z_gtFine_labelIds.png"]


def test_the_plot_is_a_png(tmp_path):
    confusion = confusion_matrix(TRUTH, PREDICTED, 4)
    path = plot_confusion([("a", confusion), ("b", confusion.T)], ["background", "one", "two", "three"],
                          tmp_path / "confusion.png")
    with Image.open(path) as image:
        image.load()
        assert image.format == "PNG" and image.width > image.height > 100
    assert [p.name for p in tmp_path.iterdir()] == ["confusion.png"]  # no temporary file left
