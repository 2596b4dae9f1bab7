"""What a run over a dataset did: images segmented, failed and skipped, the rate, and the class
areas summed over every label map."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image


@dataclass
class DatasetSummary:
    class_names: Sequence[str]
    images: int = 0
    segmented: int = 0
    failed: int = 0
    skipped: int = 0
    where: str = "in this process"
    started: float = field(default_factory=time.perf_counter)
    seconds: float = 0.0
    pixels: np.ndarray = field(default_factory=lambda: np.zeros(256, dtype=np.int64))

    def add_labels(self, labels: np.ndarray) -> None:
        self.pixels += np.bincount(labels.reshape(-1), minlength=256)[:256]

    def add_written_mask(self, path: Path) -> None:
        """A class model's mask from an earlier run (--resume): its areas count too."""
        with Image.open(path) as mask:
            self.add_labels(np.asarray(mask, dtype=np.uint8))

    def finish(self) -> None:
        self.seconds = time.perf_counter() - self.started

    @property
    def rate(self) -> float:
        return self.segmented / self.seconds if self.seconds > 0 else 0.0

    def areas(self) -> list[dict[str, Any]]:
        total = int(self.pixels.sum())
        return [{"id": int(c), "name": self._name(int(c)), "pixels": int(self.pixels[c]),
                 "share": round(float(self.pixels[c] / total), 6)}
                for c in sorted(np.flatnonzero(self.pixels), key=lambda c: (-self.pixels[c], c))]

    def to_dict(self) -> dict[str, Any]:
        return {"images": self.images, "segmented": self.segmented, "failed": self.failed, "skipped": self.skipped,
                "seconds": round(self.seconds, 3), "images_per_second": round(self.rate, 3), "where": self.where,
                "classes": self.areas()}

    def lines(self) -> list[str]:
        shares = ", ".join(f"{a['name']} {100 * a['share']:.1f}%" for a in self.areas()[:8])
        more = len(self.areas()) - 8
        resumed = f", {self.skipped} already written (--resume)" if self.skipped else ""
        return [f"{self.images} images: {self.segmented} segmented, {self.failed} failed{resumed}; "
                f"{self.seconds:.1f} s {self.where}, {self.rate:.2f} images/s",
                f"class areas over the dataset: {shares or 'none'}" + (f" and {more} more" if more > 0 else "")]

    def _name(self, class_id: int) -> str:
        return self.class_names[class_id] if class_id < len(self.class_names) else f"class {class_id}"


def written(paths: Sequence[Path | None]) -> bool:
    """Every output exists and decodes as a whole PNG (an interrupted or corrupt file does not)."""
    outputs = [p for p in paths if p is not None]
    return bool(outputs) and all(valid_png(p) for p in outputs)


def valid_png(path: Path) -> bool:
    try:
        with Image.open(path) as image:
            image.load()
            return image.format == "PNG"
    except (OSError, ValueError, SyntaxError):
        return False
