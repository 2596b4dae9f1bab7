"""The metrics of semantic segmentation, from a confusion matrix summed over a dataset.

confusion[t, p] counts the pixels of ground-truth class t predicted as p; pixels labelled IGNORE
(255) in the ground truth are not counted. IoU of class c = TP / (TP + FP + FN), i.e.
confusion[c, c] / (row c + column c - confusion[c, c]). A class absent from the ground truth has
no IoU (None), and mIoU is the mean over the classes present, as the PASCAL VOC devkit computes it
on a whole dataset.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from npdeeplab.errors import InputError

IGNORE = 255


def confusion_matrix(truth: np.ndarray, predicted: np.ndarray, classes: int, ignore: int = IGNORE) -> np.ndarray:
    """[classes, classes] int64 counts of (ground truth, prediction) pairs, ignored pixels left out."""
    if truth.shape != predicted.shape:
        raise InputError(f"ground truth {truth.shape} and prediction {predicted.shape} differ in shape")
    keep = truth != ignore
    t, p = truth[keep].astype(np.int64), predicted[keep].astype(np.int64)
    if t.size and (t.max() >= classes or p.max() >= classes):
        raise InputError(f"class ids must be under {classes} (or {ignore}, ignored); got up to {max(t.max(), p.max())}")
    return np.bincount(t * classes + p, minlength=classes * classes).reshape(classes, classes)


@dataclass(frozen=True)
class Scores:
    iou: list[float | None]  # per class; None where the class is absent from the ground truth
    miou: float | None  # mean IoU over the classes present
    pixel_accuracy: float | None  # share of counted pixels predicted right
    fw_iou: float | None  # IoU weighted by each class's share of the ground truth
    pixels: int  # pixels counted (not ignored)


def scores(confusion: np.ndarray) -> Scores:
    """IoUs, mIoU, pixel accuracy and frequency-weighted IoU of a confusion matrix (None if empty)."""
    confusion = np.asarray(confusion, dtype=np.int64)
    hits = np.diag(confusion)
    truth, predicted, total = confusion.sum(axis=1), confusion.sum(axis=0), int(confusion.sum())
    present = truth > 0
    union = truth + predicted - hits
    iou = np.divide(hits, union, out=np.zeros(len(hits)), where=union > 0)
    if total == 0:
        return Scores([None] * len(hits), None, None, None, 0)
    return Scores(
        [float(v) if p else None for v, p in zip(iou, present, strict=True)],
        float(iou[present].mean()),
        float(hits.sum() / total),
        float((truth[present] / total * iou[present]).sum()),
        total,
    )
