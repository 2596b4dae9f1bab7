"""Shared fixtures: where the shared models and images are, and LiteRT as the reference.

A test that needs LiteRT, a shared model or a shared image skips on a machine that lacks it,
but fails when CI=true: in CI a skipped comparison would be a missing test.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from npdeeplab.runtime.backends import numba_available

IN_CI = os.environ.get("CI") == "true"
SHARED = Path(__file__).resolve().parents[2] / "shared"
SEED_MODEL = "deeplabv3_257_mv_gpu.tflite"
BACKENDS = ["numpy"] + (["numba"] if numba_available() else [])


def require(condition: bool, reason: str) -> None:
    """Skip (locally) or fail (in CI) unless condition holds."""
    if not condition:
        if IN_CI:
            pytest.fail(f"{reason} (CI=true: this must not be skipped)", pytrace=False)
        pytest.skip(reason)


def shared_file(kind: str, filename: str) -> Path:
    """A shared model or image ($NPDEEPLAB_MODELS / $NPDEEPLAB_IMAGES, default ../shared/<kind>)."""
    variable = "NPDEEPLAB_MODELS" if kind == "models" else "NPDEEPLAB_IMAGES"
    folder = _folder(variable, SHARED / kind)
    found = folder is not None and (folder / filename).is_file()
    require(found, f"{filename} not found (set {variable})")
    return folder / filename


def litert_module():
    """ai_edge_litert.interpreter, for tests that are not fixtures' consumers (hypothesis, helpers)."""
    try:
        from ai_edge_litert import interpreter
    except ImportError:
        require(False, "LiteRT (ai-edge-litert) is not installed")
    return interpreter


def chromium() -> str:
    """The headless browser the report tests render in."""
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    require(path is not None, "Chromium is not installed (apt-get install chromium)")
    return path


def browse(path: Path, *arguments: str, cwd: Path) -> subprocess.CompletedProcess:
    """Chromium, headless and offline, on a local page (--dump-dom, --screenshot=...)."""
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={cwd / 'profile'}", "--hide-scrollbars"]
    return subprocess.run([chromium(), *flags, *arguments, path.as_uri()], capture_output=True, text=True,
                          timeout=180, cwd=cwd)


def _folder(variable: str, fallback: Path) -> Path | None:
    """The first existing folder of $variable, else fallback, as an absolute path: tests hand
    these paths to subprocesses that run in other working directories."""
    for candidate in [*os.environ.get(variable, "").split(os.pathsep), str(fallback)]:
        if candidate and Path(candidate).is_dir():
            return Path(candidate).resolve()
    return None


@pytest.fixture(scope="session")
def shared_models_dir() -> Path:
    folder = _folder("NPDEEPLAB_MODELS", SHARED / "models")
    require(folder is not None and (folder / SEED_MODEL).is_file(), "shared models not found: set NPDEEPLAB_MODELS")
    return folder


@pytest.fixture(scope="session")
def shared_images_dir() -> Path:
    folder = _folder("NPDEEPLAB_IMAGES", SHARED / "images")
    found = folder is not None and (folder / "astronaut.png").is_file()
    require(found, "shared images not found: set NPDEEPLAB_IMAGES")
    return folder


@pytest.fixture(scope="session")
def seed_model_path(shared_models_dir: Path) -> Path:
    return shared_models_dir / SEED_MODEL


@pytest.fixture(scope="session")
def image_path(shared_images_dir: Path):
    def find(name: str) -> Path:
        path = shared_images_dir / name
        require(path.is_file(), f"shared image {name} not found")
        return path

    return find


@pytest.fixture(scope="session")
def litert():
    """LiteRT's Interpreter class and OpResolverType."""
    try:
        from ai_edge_litert.interpreter import Interpreter, OpResolverType
    except ImportError:
        require(False, "LiteRT (ai-edge-litert) is not installed")
    return Interpreter, OpResolverType


@pytest.fixture(autouse=True)
def _models_from_shared_folder(monkeypatch):
    """Registry names resolve to the shared models, never to a download or the user's cache."""
    folder = _folder("NPDEEPLAB_MODELS", SHARED / "models")
    if folder is not None:
        monkeypatch.setenv("NPDEEPLAB_MODELS", str(folder))


def seed_input(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).uniform(-1, 1, (1, 257, 257, 3)).astype(np.float32)
