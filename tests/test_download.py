"""Model downloads against a local HTTP server: resume, verification, skips and errors."""

from __future__ import annotations

import hashlib
import http.server
import os
import re
import socket
import threading
from pathlib import Path

import pytest
import yaml
from conftest import REPO_ROOT

from frameloom import download as dl
from frameloom.detector import REQUIRED_FILES
from frameloom.embedding import REQUIRED_FILES as EMBEDDING_FILES

SCHEMA = REPO_ROOT / "config" / "schemas" / "strategy_configs.schema.yaml"


def payload(size: int, seed: int) -> bytes:
    """Deterministic, non-repeating bytes, so a misplaced chunk changes the hash."""
    blocks = (hashlib.sha256(f"{seed}:{i}".encode()).digest() for i in range(size // 32 + 1))
    return b"".join(blocks)[:size]


class FileServer(http.server.ThreadingHTTPServer):
    """Serves ``files`` by path with byte ranges, and records what each request asked for."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), RangeHandler)
        self.files: dict[str, bytes] = {}
        self.honour_ranges = True
        self.cut_next_response_at: int | None = None  # bytes sent before dropping the connection
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header)
        self.bytes_sent = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/{path}"


class RangeHandler(http.server.BaseHTTPRequestHandler):
    server: FileServer

    def do_GET(self):
        path = self.path.lstrip("/")
        range_header = self.headers.get("Range")
        self.server.requests.append((path, range_header))
        body = self.server.files.get(path)
        if body is None:
            self.send_error(404, "Not Found")
            return
        start = 0
        match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
        if match and self.server.honour_ranges:
            start = int(match.group(1))
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        else:
            self.send_response(200)
        chunk = body[start:]
        self.send_header("Content-Length", str(len(chunk)))
        self.end_headers()
        if self.server.cut_next_response_at is not None:
            chunk = chunk[: self.server.cut_next_response_at]
            self.server.cut_next_response_at = None
        self.wfile.write(chunk)
        self.server.bytes_sent += len(chunk)

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    httpd = FileServer()
    thread = threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield httpd
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture(autouse=True)
def short_timeout(monkeypatch):
    monkeypatch.setattr(dl, "TIMEOUT_S", 5)


def serve(server: FileServer, name: str, content: bytes, sha256: str | None = "auto") -> dict[str, dl.ModelFile]:
    """Publish ``content`` and a one-entry registry whose URL points at it."""
    relative = f"weights/{name}.bin"
    server.files[relative] = content
    digest = hashlib.sha256(content).hexdigest() if sha256 == "auto" else sha256
    return {name: dl.ModelFile(name, server.url(relative), relative, digest, len(content))}


def test_full_download_is_verified_and_renamed_into_place(server, tmp_path, capsys):
    content = payload(300_000, seed=1)
    registry = serve(server, "tiny", content)
    [outcome] = dl.download(["tiny"], tmp_path, registry=registry)

    target = tmp_path / "weights" / "tiny.bin"
    assert outcome.action == "downloaded" and outcome.path == target and outcome.verified
    assert target.read_bytes() == content
    assert not target.with_name("tiny.bin.part").exists()
    assert server.requests == [("weights/tiny.bin", None)]
    assert "tiny" in capsys.readouterr().err  # progress went to stderr


def test_resume_requests_only_the_missing_bytes(server, tmp_path):
    content = payload(300_000, seed=2)
    registry = serve(server, "tiny", content)
    part = tmp_path / "weights" / "tiny.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(content[:120_000])

    [outcome] = dl.download(["tiny"], tmp_path, progress=False, registry=registry)

    assert outcome.action == "resumed" and outcome.bytes_fetched == 180_000
    assert server.requests == [("weights/tiny.bin", "bytes=120000-")]
    assert server.bytes_sent == 180_000
    assert (tmp_path / "weights" / "tiny.bin").read_bytes() == content


def test_interrupted_download_continues_on_the_next_run(server, tmp_path):
    content = payload(250_000, seed=3)
    registry = serve(server, "tiny", content)
    server.cut_next_response_at = 100_000

    with pytest.raises(dl.DownloadError, match=r"tiny: download interrupted after 100000 of 250000 bytes.*resume"):
        dl.download(["tiny"], tmp_path, progress=False, registry=registry)
    assert (tmp_path / "weights" / "tiny.bin.part").stat().st_size == 100_000
    assert not (tmp_path / "weights" / "tiny.bin").exists()

    [outcome] = dl.download(["tiny"], tmp_path, progress=False, registry=registry)
    assert outcome.action == "resumed"
    assert server.requests[-1] == ("weights/tiny.bin", "bytes=100000-")
    assert (tmp_path / "weights" / "tiny.bin").read_bytes() == content


def test_server_without_range_support_restarts_from_zero(server, tmp_path):
    content = payload(200_000, seed=4)
    registry = serve(server, "tiny", content)
    server.honour_ranges = False
    part = tmp_path / "weights" / "tiny.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(content[:50_000])

    [outcome] = dl.download(["tiny"], tmp_path, progress=False, registry=registry)
    assert outcome.action == "downloaded" and outcome.bytes_fetched == 200_000
    assert (tmp_path / "weights" / "tiny.bin").read_bytes() == content


def test_stale_partial_file_is_discarded_and_fetched_again(server, tmp_path):
    content = payload(200_000, seed=5)
    registry = serve(server, "tiny", content)
    part = tmp_path / "weights" / "tiny.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(payload(80_000, seed=99))  # a prefix of some other file

    [outcome] = dl.download(["tiny"], tmp_path, progress=False, registry=registry)
    assert outcome.action == "downloaded"
    assert [rng for _, rng in server.requests] == ["bytes=80000-", None]
    assert (tmp_path / "weights" / "tiny.bin").read_bytes() == content


def test_complete_partial_file_is_verified_and_kept(server, tmp_path):
    content = payload(64_000, seed=6)
    registry = serve(server, "tiny", content)
    part = tmp_path / "weights" / "tiny.bin.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(content)  # interrupted between the last byte and the rename

    [outcome] = dl.download(["tiny"], tmp_path, progress=False, registry=registry)
    assert outcome.action == "resumed" and outcome.bytes_fetched == 0
    assert server.bytes_sent == 0
    assert (tmp_path / "weights" / "tiny.bin").read_bytes() == content


def test_hash_mismatch_names_both_hashes_and_keeps_nothing(server, tmp_path):
    content = payload(100_000, seed=7)
    published = hashlib.sha256(b"the file the registry describes").hexdigest()
    registry = serve(server, "tiny", content, sha256=published)

    with pytest.raises(dl.DownloadError) as error:
        dl.download(["tiny"], tmp_path, progress=False, registry=registry)
    message = str(error.value)
    assert "sha256 mismatch" in message and "\n" not in message
    assert published in message and hashlib.sha256(content).hexdigest() in message
    assert not any((tmp_path / "weights").iterdir())


def test_file_present_with_the_right_hash_is_not_fetched(server, tmp_path):
    content = payload(50_000, seed=8)
    registry = serve(server, "tiny", content)
    target = tmp_path / "weights" / "tiny.bin"
    target.parent.mkdir(parents=True)
    target.write_bytes(content)

    [outcome] = dl.download(["tiny"], tmp_path, progress=False, registry=registry)
    assert outcome.action == "present" and outcome.bytes_fetched == 0
    assert server.requests == []


def test_file_present_with_a_wrong_hash_is_replaced(server, tmp_path):
    content = payload(50_000, seed=9)
    registry = serve(server, "tiny", content)
    target = tmp_path / "weights" / "tiny.bin"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"truncated by an earlier tool")

    [outcome] = dl.download(["tiny"], tmp_path, progress=False, registry=registry)
    assert outcome.action == "downloaded"
    assert target.read_bytes() == content


def test_missing_file_reports_the_http_status_and_url(server, tmp_path):
    registry = {"gone": dl.ModelFile("gone", server.url("weights/gone.bin"), "weights/gone.bin", "0" * 64)}
    expected = r"^gone: HTTP 404 Not Found from http://127\.0\.0\.1:\d+/weights/gone\.bin$"
    with pytest.raises(dl.DownloadError, match=expected):
        dl.download(["gone"], tmp_path, progress=False, registry=registry)
    assert not (tmp_path / "weights" / "gone.bin.part").exists()


def test_unreachable_server_is_one_line(tmp_path):
    with socket.socket() as probe:  # a port with nothing listening once closed
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    registry = {"far": dl.ModelFile("far", f"http://127.0.0.1:{port}/far.bin", "far.bin", "0" * 64)}
    with pytest.raises(dl.DownloadError, match=r"^far: cannot reach http://127\.0\.0\.1:\d+/far\.bin: "):
        dl.download(["far"], tmp_path, progress=False, registry=registry)


def test_unverified_model_is_refused_before_anything_is_fetched(server, tmp_path):
    registry = serve(server, "hashed", payload(10_000, seed=10)) | serve(server, "unhashed", b"x" * 100, sha256=None)
    with pytest.raises(dl.DownloadError, match="no published sha256 for unhashed.*--allow-unverified"):
        dl.download(["hashed", "unhashed"], tmp_path, progress=False, registry=registry)
    assert server.requests == []

    outcomes = dl.download(["hashed", "unhashed"], tmp_path, progress=False, allow_unverified=True, registry=registry)
    assert [(o.name, o.verified) for o in outcomes] == [("hashed", True), ("unhashed", False)]
    assert outcomes[1].sha256 == hashlib.sha256(b"x" * 100).hexdigest()


def test_base_url_override_fetches_from_a_mirror_with_the_same_layout(server, tmp_path):
    content = payload(30_000, seed=11)
    server.files["segmentation/mirrored.pt"] = content
    registry = {"mirrored": dl.ModelFile("mirrored", "https://example.invalid/mirrored.pt",
                                         "segmentation/mirrored.pt", hashlib.sha256(content).hexdigest())}
    [outcome] = dl.download(["mirrored"], tmp_path, base_url_override=server.url(""), progress=False,
                            registry=registry)
    assert outcome.path.read_bytes() == content


def test_cli_prints_one_line_per_file_and_fails_with_one_line(server, tmp_path, monkeypatch, capsys):
    content = payload(20_000, seed=12)
    monkeypatch.setattr(dl, "MODELS", serve(server, "tiny", content))
    assert dl.main(["--models", "tiny", "--models-dir", str(tmp_path), "--no-progress"]) == 0
    assert re.fullmatch(r"tiny: downloaded 0\.0 MiB, sha256 verified: .*tiny\.bin\n", capsys.readouterr().out)
    assert dl.main(["--models", "tiny", "--models-dir", str(tmp_path)]) == 0
    assert "tiny: already present, sha256 verified" in capsys.readouterr().out

    assert dl.main(["--models", "nonesuch", "--models-dir", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("error: unknown model 'nonesuch'")


def test_groups_expand_and_repeats_collapse():
    assert dl.resolve_names(["sam2", "lama", "sam2_hiera_large", "faces"]) == [
        "sam2_hiera_large", "lama", "yunet", "anime_face_cascade"]
    assert dl.resolve_names(["all"]) == [name for name, model in dl.MODELS.items() if model.sha256]
    assert dl.resolve_names(["qwen2_vl"]) == list(dl.GROUPS["qwen2_vl"])
    with pytest.raises(dl.DownloadError, match="unknown model 'sam3'"):
        dl.resolve_names(["sam3"])


def test_registry_matches_the_workflow_model_paths():
    schema = yaml.safe_load(SCHEMA.read_text())
    defaults = {key: spec["default"] for key, spec in schema["properties"]["model_paths"]["properties"].items()}
    for key, relative in defaults.items():
        if key == "qwen2_vl":  # a Hugging Face snapshot: a folder of files, each pinned
            snapshot = [dl.MODELS[name] for name in dl.GROUPS["qwen2_vl"]]
            assert {Path(model.relative_path).parent.as_posix() for model in snapshot} == {relative}
            names = {Path(model.relative_path).name for model in snapshot}
            assert {"config.json", "model.safetensors.index.json", "tokenizer.json", "preprocessor_config.json",
                    "model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"} <= names
            assert all(model.sha256 and model.size for model in snapshot)
            # One revision for every file: a snapshot mixed from two commits may not load.
            assert len({re.search(r"/resolve/([0-9a-f]{40})/", model.url)[1] for model in snapshot}) == 1
        elif key == "grounding_dino":  # the character finder's snapshot, pinned file by file
            snapshot = [dl.MODELS[name] for name in dl.GROUPS["grounding_dino_tiny"]]
            assert {Path(model.relative_path).parent.as_posix() for model in snapshot} == {relative}
            assert set(REQUIRED_FILES) <= {Path(model.relative_path).name for model in snapshot}
        elif key == "dinov2":  # the identity embedding's snapshot, pinned file by file
            snapshot = [dl.MODELS[name] for name in dl.GROUPS["dinov2_small"]]
            assert {Path(model.relative_path).parent.as_posix() for model in snapshot} == {relative}
            assert set(EMBEDDING_FILES) <= {Path(model.relative_path).name for model in snapshot}
            assert all(model.sha256 for model in snapshot)
            assert len({re.search(r"/resolve/([0-9a-f]{40})/", model.url)[1] for model in snapshot}) == 1
        else:
            assert dl.MODELS[key].relative_path == relative, key
    sam2_names = [n for n in schema["definitions"]["sam2_models"]["enum"] if n != "grabcut"]
    for name in sam2_names:
        assert dl.MODELS[name].relative_path == f"segmentation/{name}.pt"


def test_registry_entries_are_well_formed():
    for name, model in dl.MODELS.items():
        assert model.name == name
        assert model.url.startswith("https://")
        assert model.sha256 is None or re.fullmatch(r"[0-9a-f]{64}", model.sha256), name


def test_pinned_hashes_match_the_real_weights_on_disk(real_models_dir):
    """The shared folder holds official copies of the face models (its Real-ESRGAN is a conversion)."""
    for name in ("yunet", "anime_face_cascade"):
        model = dl.MODELS[name]
        path = real_models_dir / model.relative_path
        if not path.is_file():
            pytest.skip(f"{path} not present")
        data = path.read_bytes()
        assert hashlib.sha256(data).hexdigest() == model.sha256, name
        assert len(data) == model.size, name


def test_a_snapshot_counts_only_when_every_pinned_file_verifies(tmp_path, monkeypatch):
    """A half-finished, truncated or foreign download of a multi-file model is no model; hashes are
    remembered per path, size and mtime, so a verified snapshot is not hashed again."""
    files = {"config.json": b"{}", "model.safetensors": b"weights" * 100}
    models = {f"tiny/{name}": dl.ModelFile(f"tiny/{name}", f"https://example.invalid/{name}", f"snap/{name}",
                                           hashlib.sha256(data).hexdigest(), len(data))
              for name, data in files.items()}
    monkeypatch.setattr(dl, "MODELS", {**dl.MODELS, **models})
    monkeypatch.setattr(dl, "GROUPS", {**dl.GROUPS, "tiny": tuple(models)})
    cache = tmp_path / "cache" / "verified.json"
    root = tmp_path / "models"
    (root / "snap").mkdir(parents=True)
    (root / "snap" / "config.json").write_bytes(files["config.json"])
    assert dl.snapshot_check("tiny", root, cache) == (False, "model.safetensors is missing (an unfinished download?)")
    (root / "snap" / "model.safetensors").write_bytes(files["model.safetensors"][:100])
    complete, why = dl.snapshot_check("tiny", root, cache)
    assert not complete and why == "model.safetensors has 100 bytes, not the pinned 700"
    (root / "snap" / "model.safetensors").write_bytes(b"W" * 700)
    assert dl.snapshot_check("tiny", root, cache) == (False, "model.safetensors does not match its pinned sha256")
    (root / "snap" / "model.safetensors").write_bytes(files["model.safetensors"])
    assert dl.snapshot_check("tiny", root, cache) == (True, "every file of the pinned snapshot verified")
    hashed = []
    monkeypatch.setattr(dl, "_file_sha256", lambda path: hashed.append(path) or hashlib.sha256(path.read_bytes()))
    assert dl.snapshot_check("tiny", root, cache)[0] and hashed == []  # remembered
    os.utime(root / "snap" / "model.safetensors", ns=(1, 1))  # touched since: hashed again
    assert dl.snapshot_check("tiny", root, cache)[0] and hashed == [root / "snap" / "model.safetensors"]


@pytest.mark.parametrize("model", ["RealESRGAN_x4plus_anime_6B", "realesr-animevideov3", "CodeFormer", "GFPGAN",
                                   "sam2_hiera_large", "lama"])
def test_every_missing_weights_hint_names_a_command_that_works(model, tmp_path):
    """The hint's names resolve in the registry, and a model without a pinned hash says
    --allow-unverified (without it the download refuses, exit 2)."""
    from frameloom.backends import download_hint

    hint = download_hint(model)
    names = hint.split("--models ")[1].split()
    flags = [name for name in names if name.startswith("--")]
    names = [name for name in names if not name.startswith("--")]
    resolved = dl.resolve_names(names)
    unverified = [name for name in resolved if dl.MODELS[name].sha256 is None]
    assert flags == (["--allow-unverified"] if unverified else [])
    if unverified:  # refused before any transfer without the flag the hint names
        with pytest.raises(dl.DownloadRequestError, match="--allow-unverified"):
            dl.download(names, tmp_path, progress=False)
