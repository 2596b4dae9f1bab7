"""Whole datasets: a per-image task mapped over many images, in order, in this process, in a pool of
processes (runner, pool) or on a Dask cluster (cluster); the tasks themselves (tasks); ground-truth
masks (masks), the metrics of semantic segmentation (metrics) and their plot (plot)."""

from npdeeplab.dataset.metrics import Scores, confusion_matrix, scores
from npdeeplab.dataset.runner import Task, default_workers, run_ordered

__all__ = ["Scores", "Task", "confusion_matrix", "default_workers", "run_ordered", "scores"]
