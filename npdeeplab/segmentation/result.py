"""What `segment` returns: the label map, the model's outputs and, for person models, the matte."""

from __future__ import annotations

import base64
import html
import io
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from npdeeplab.errors import InputError
from npdeeplab.segmentation import matte as mattes
from npdeeplab.segmentation import palette


@dataclass(frozen=True)
class ClassArea:
    class_id: int
    name: str
    pixels: int
    share: float


@dataclass(repr=False)
class SegmentationResult:
    labels: np.ndarray  # H x W uint8 class ids at the image's size
    logits: np.ndarray | None  # h x w x C float32 at the model's resolution (None for label models)
    class_names: tuple[str, ...]
    image: Image.Image
    model: str
    reading: str = "argmax"  # how the model's output became labels (ModelSpec.describe)
    matte: np.ndarray | None = None  # foreground models: H x W float32 person probability at the image's size
    outputs: dict[str, np.ndarray] = field(default_factory=dict)  # every model output by tensor name, as run
    threshold: float | None = None  # foreground models: labels are matte > threshold

    def __repr__(self) -> str:
        classes = ", ".join(f"{a.name} {100 * a.share:.1f}%" for a in self.areas())
        return f"SegmentationResult(model={self.model!r}, size={self.image.width}x{self.image.height}, {classes})"

    def areas(self) -> list[ClassArea]:
        """Each class present, largest first."""
        counts = np.bincount(self.labels.reshape(-1), minlength=len(self.class_names))
        total = int(self.labels.size)
        rows = [
            ClassArea(c, self._name(c), int(n), float(n / total)) for c, n in enumerate(counts) if n > 0
        ]
        return sorted(rows, key=lambda row: (-row.pixels, row.class_id))

    @property
    def foreground_share(self) -> float | None:
        """Foreground models: the share of pixels over the threshold (None for class models)."""
        return None if self.matte is None else float(np.count_nonzero(self.labels) / self.labels.size)

    def overlay(self, alpha: float = 0.5, legend: bool = True) -> Image.Image:
        return palette.overlay(self.image, self.labels, alpha, self.class_names, legend=legend)

    def mask_image(self) -> Image.Image:
        return palette.mask_image(self.labels)

    def save_mask(self, path: str | os.PathLike) -> Path:
        """The label map as a VOC palette PNG (class ids; for foreground models 0 and 1)."""
        return palette.save_mask_png(self.labels, path)

    def save_matte(self, path: str | os.PathLike, threshold: float | None = None) -> Path:
        """The matte as an 8-bit greyscale PNG (255 = person), or with a threshold a binary 0/255 mask."""
        return mattes.save_matte_png(self._matte(), path, threshold)

    def composite(
        self,
        background: mattes.Background = "blur",
        blur_radius: float | None = None,
        feather: float | None = None,
    ) -> Image.Image:
        """The person over a new background; see npdeeplab.segmentation.matte.composite."""
        return mattes.composite(self.image, self._matte(), background, blur_radius, feather)

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "model": self.model,
            "width": self.image.width,
            "height": self.image.height,
            "reading": self.reading,
            "classes": [
                {"id": a.class_id, "name": a.name, "pixels": a.pixels, "share": round(a.share, 6)}
                for a in self.areas()
            ],
        }
        if self.matte is not None:
            data["foreground"] = {
                "name": self._name(1),
                "share": round(self.foreground_share or 0.0, 6),  # pixels over the threshold
                "matte_mean": round(float(self.matte.mean()), 6),  # the soft share
                "threshold": self.threshold,
            }
        return data

    def _repr_html_(self) -> str:
        buffer = io.BytesIO()
        picture = self.overlay()
        picture.thumbnail((640, 640))
        picture.save(buffer, format="PNG")
        encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
        rows = "".join(
            f"<tr><td>{a.class_id}</td><td>{html.escape(a.name)}</td><td style='text-align:right'>"
            f"{100 * a.share:.1f}%</td></tr>"
            for a in self.areas()
        )
        return (
            f"<div style='display:flex;gap:16px;align-items:flex-start'>"
            f"<img src='data:image/png;base64,{encoded}' alt='segmentation overlay'/>"
            f"<table><thead><tr><th>id</th><th>class</th><th>area</th></tr></thead><tbody>{rows}</tbody></table>"
            f"</div>"
        )

    def _matte(self) -> np.ndarray:
        if self.matte is None:
            raise InputError(
                f"{self.model} is a class model ({self.reading}): only foreground (person) models give a matte"
            )
        return self.matte

    def _name(self, class_id: int) -> str:
        return self.class_names[class_id] if class_id < len(self.class_names) else f"class {class_id}"
