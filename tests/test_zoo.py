"""Model registry, model resolution and downloading (against a local HTTP server only)."""

from __future__ import annotations

import hashlib
import http.server
import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import require

from npdeeplab import zoo
from npdeeplab.errors import ChecksumError, DownloadError, ModelNotFoundError

FLOAT_MODEL = "deeplabv3_257_mv_gpu"
QUANT_MODEL = "deeplabv3_mnv2_dm05_pascal_quant"  # the smaller file: used for the download tests
SELFIE_MODEL = "selfiesegmentation_mlkit-256x256-2021_01_19-v1215.f16"  # no download address
LOOPBACK = {"127.0.0.1", "localhost", "::1"}


# ---------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def shared_models(shared_models_dir) -> Path:
    """The shared models folder (absolute, from conftest), with the quantized model in it too."""
    require((shared_models_dir / f"{QUANT_MODEL}.tflite").is_file(), f"{QUANT_MODEL}.tflite not found")
    return shared_models_dir


@pytest.fixture(autouse=True)
def isolated(monkeypatch, tmp_path) -> Path:
    """Every test: an empty private cache, no model dirs, no mirror, and no network beyond loopback."""
    cache = tmp_path / "cache"
    monkeypatch.setenv("NPDEEPLAB_CACHE", str(cache))
    monkeypatch.delenv("NPDEEPLAB_MODELS", raising=False)
    monkeypatch.delenv("NPDEEPLAB_MODEL_URL_BASE", raising=False)
    real_create_connection = socket.create_connection

    def loopback_only(address, *args, **kwargs):
        assert address[0] in LOOPBACK, f"test tried to reach the network: {address}"
        return real_create_connection(address, *args, **kwargs)

    monkeypatch.setattr(socket, "create_connection", loopback_only)
    return cache


@pytest.fixture
def use_shared(monkeypatch, shared_models) -> Path:
    monkeypatch.setenv("NPDEEPLAB_MODELS", str(shared_models))
    return shared_models


@pytest.fixture(scope="session")
def quant_bytes(shared_models) -> bytes:
    return (shared_models / f"{QUANT_MODEL}.tflite").read_bytes()


@pytest.fixture
def server(quant_bytes) -> Iterator[str]:
    """A local HTTP server: /good/<f> real bytes, /bad/<f> wrong bytes, /short/<f> truncated, else 404."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            kind = self.path.strip("/").split("/")[0]
            body = {"good": quant_bytes, "bad": b"not a model" * 1000, "short": quant_bytes[:1000]}.get(kind)
            if body is None:
                self.send_error(404, "Not Found")
                return
            self.send_response(200)
            length = len(quant_bytes) if kind == "short" else len(body)
            self.send_header("Content-Length", str(length))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):  # keep pytest output clean
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def files_in(directory: Path) -> list[str]:
    """Every file name (hidden temporary files included) in a directory that may not exist."""
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# ---------------------------------------------------------------- registry


def test_registry_has_both_models_with_voc_labels():
    entries = zoo.registry()
    assert set(entries) == {FLOAT_MODEL, QUANT_MODEL, SELFIE_MODEL}  # Selfie: tests/test_person_segmentation.py
    for entry in (entries[FLOAT_MODEL], entries[QUANT_MODEL]):
        assert len(entry.labels) == 21
        assert entry.labels[0] == "background" and entry.labels[15] == "person" and entry.labels[20] == "tvmonitor"
        assert len(entry.sha256) == 64 and entry.url.startswith("https://") and entry.licence == "Apache-2.0"
    float_entry, quant_entry = entries[FLOAT_MODEL], entries[QUANT_MODEL]
    assert zoo.DEFAULT_MODEL == FLOAT_MODEL
    assert (float_entry.input_size, float_entry.input_dtype, float_entry.output) == ((257, 257), "float32", "logits")
    assert (float_entry.mean, float_entry.std) == (127.5, 127.5)
    assert (quant_entry.input_size, quant_entry.input_dtype, quant_entry.output) == ((513, 513), "uint8", "labels")
    assert (quant_entry.mean, quant_entry.std) == (0.0, 1.0)


def test_registry_matches_the_shared_files(shared_models):
    for entry in zoo.registry().values():
        path = shared_models / entry.filename
        assert path.stat().st_size == entry.size
        assert zoo.sha256_of(path) == entry.sha256


def test_get_entry_unknown_name_lists_known_names():
    assert zoo.get_entry(FLOAT_MODEL).name == FLOAT_MODEL
    with pytest.raises(ModelNotFoundError, match="no_such_model") as info:
        zoo.get_entry("no_such_model")
    message = str(info.value)
    assert FLOAT_MODEL in message and QUANT_MODEL in message and "\n" not in message


def test_entry_for_path_matches_on_the_file_stem(tmp_path):
    assert zoo.entry_for_path(tmp_path / f"{FLOAT_MODEL}.tflite") == zoo.get_entry(FLOAT_MODEL)
    assert zoo.entry_for_path(f"some/dir/{QUANT_MODEL}.tflite").name == QUANT_MODEL
    assert zoo.entry_for_path(tmp_path / "my_model.tflite") is None


# ---------------------------------------------------------------- directories


def test_cache_dir_precedence_and_not_created(monkeypatch, tmp_path, isolated):
    assert zoo.cache_dir() == isolated
    assert not isolated.exists()
    monkeypatch.delenv("NPDEEPLAB_CACHE")
    monkeypatch.delenv("LOCALAPPDATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert zoo.cache_dir() == tmp_path / "xdg" / "npdeeplab"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert zoo.cache_dir() == tmp_path / "home" / ".cache" / "npdeeplab"


def test_model_dirs_splits_on_pathsep(monkeypatch, tmp_path):
    assert zoo.model_dirs() == []
    monkeypatch.setenv("NPDEEPLAB_MODELS", os.pathsep.join([str(tmp_path / "a"), "", str(tmp_path / "b")]))
    assert zoo.model_dirs() == [tmp_path / "a", tmp_path / "b"]


def test_sha256_of(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"abc" * 100_000)
    assert zoo.sha256_of(path) == hashlib.sha256(b"abc" * 100_000).hexdigest()


# ---------------------------------------------------------------- resolve_model


def test_resolve_by_name_through_npdeeplab_models(use_shared, isolated):
    for name in (FLOAT_MODEL, QUANT_MODEL):
        assert zoo.resolve_model(name, download=False) == use_shared / f"{name}.tflite"
    assert not isolated.exists()  # nothing was downloaded or created


def test_resolve_searches_every_listed_dir_in_order(monkeypatch, tmp_path, shared_models):
    monkeypatch.setenv("NPDEEPLAB_MODELS", os.pathsep.join([str(tmp_path / "missing"), str(shared_models)]))
    assert zoo.resolve_model(FLOAT_MODEL, download=False) == shared_models / f"{FLOAT_MODEL}.tflite"


def test_resolve_existing_path_is_returned_as_is(shared_models, tmp_path):
    path = shared_models / f"{QUANT_MODEL}.tflite"
    assert zoo.resolve_model(path) == path
    assert zoo.resolve_model(str(path)) == path
    renamed = tmp_path / "anything.tflite"
    renamed.write_bytes(b"not checked: a user's own file")
    assert zoo.resolve_model(str(renamed)) == renamed


@pytest.mark.parametrize("given", ["missing/model.tflite", "missing.tflite", f"{FLOAT_MODEL}.tflite"])
def test_resolve_missing_path_names_it(given, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelNotFoundError, match="not found") as info:
        zoo.resolve_model(given)
    assert given in str(info.value)


def test_resolve_unknown_name_lists_known_names(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelNotFoundError, match=f"unknown model 'mobilenet'.*{FLOAT_MODEL}"):
        zoo.resolve_model("mobilenet")


def test_resolve_corrupted_copy_raises_checksum_error(monkeypatch, tmp_path):
    corrupted = tmp_path / "models" / f"{FLOAT_MODEL}.tflite"
    corrupted.parent.mkdir()
    corrupted.write_bytes(b"\x00" * 1234)
    monkeypatch.setenv("NPDEEPLAB_MODELS", str(corrupted.parent))
    with pytest.raises(ChecksumError) as info:
        zoo.resolve_model(FLOAT_MODEL)
    message = str(info.value)
    assert str(corrupted) in message and zoo.get_entry(FLOAT_MODEL).sha256 in message
    assert hashlib.sha256(b"\x00" * 1234).hexdigest() in message and "\n" not in message


def test_resolve_without_download_says_where_it_looked(isolated):
    with pytest.raises(ModelNotFoundError) as info:
        zoo.resolve_model(FLOAT_MODEL, download=False)
    message = str(info.value)
    assert str(isolated) in message and "NPDEEPLAB_MODELS" in message
    assert zoo.get_entry(FLOAT_MODEL).url in message and "\n" not in message


# ---------------------------------------------------------------- download_model


def test_download_success(server, isolated):
    entry = zoo.get_entry(QUANT_MODEL)
    path = zoo.download_model(entry, progress=False, url=f"{server}/good/{entry.filename}")
    assert path == isolated / entry.filename
    assert zoo.sha256_of(path) == entry.sha256
    assert files_in(isolated) == [entry.filename]


def test_resolve_downloads_from_mirror_then_uses_the_cache(monkeypatch, server, isolated):
    monkeypatch.setenv("NPDEEPLAB_MODEL_URL_BASE", f"{server}/good/")
    path = zoo.resolve_model(QUANT_MODEL, progress=False)
    assert path == isolated / f"{QUANT_MODEL}.tflite"
    monkeypatch.setenv("NPDEEPLAB_MODEL_URL_BASE", f"{server}/missing")  # a second download would fail
    assert zoo.resolve_model(QUANT_MODEL, download=False) == path
    assert zoo.resolve_model(QUANT_MODEL) == path


def test_download_wrong_bytes_leaves_nothing(server, isolated):
    entry = zoo.get_entry(QUANT_MODEL)
    with pytest.raises(ChecksumError, match=entry.sha256) as info:
        zoo.download_model(entry, progress=False, url=f"{server}/bad/{entry.filename}")
    assert "\n" not in str(info.value)
    assert files_in(isolated) == []


def test_download_truncated_response_leaves_nothing(server, isolated):
    entry = zoo.get_entry(QUANT_MODEL)
    with pytest.raises(DownloadError) as info:
        zoo.download_model(entry, progress=False, url=f"{server}/short/{entry.filename}")
    assert not isinstance(info.value, ChecksumError)
    assert files_in(isolated) == []


def test_download_connection_refused_leaves_nothing(tmp_path):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    entry = zoo.get_entry(QUANT_MODEL)
    url = f"http://127.0.0.1:{port}/{entry.filename}"
    dest = tmp_path / "dest"
    with pytest.raises(DownloadError) as info:
        zoo.download_model(entry, dest, progress=False, url=url, timeout=5)
    message = str(info.value)
    assert url in message and "NPDEEPLAB_MODELS" in message and entry.url in message and "\n" not in message
    assert files_in(dest) == []


def test_download_http_404(server, isolated):
    entry = zoo.get_entry(QUANT_MODEL)
    with pytest.raises(DownloadError, match="404"):
        zoo.download_model(entry, progress=False, url=f"{server}/nowhere/{entry.filename}")
    assert files_in(isolated) == []


def test_download_timeout(isolated):
    with socket.socket() as listener:  # accepts connections (backlog) but never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/model.tflite"
        with pytest.raises(DownloadError, match="timed out"):
            zoo.download_model(zoo.get_entry(QUANT_MODEL), progress=False, url=url, timeout=0.3)
    assert files_in(isolated) == []
