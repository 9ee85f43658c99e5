"""Download the model weights the workflow can use, verified against published sha256 hashes.

    python -m frameloom.download --models sam2 lama realesrgan codeformer dinov2_small [--models-dir DIR]

Each file goes to ``{models_dir}/{relative_path}``, the path ``model_paths`` in
``config/strategy_configs.yaml`` expects by default. Downloads stream into a
``.part`` file beside the target; an interrupted download continues from where
it stopped (HTTP Range) on the next run, and the file is renamed into place
only once its sha256 matches. Files already present with the right hash are
skipped. A model without a published hash is refused unless explicitly allowed.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import json
import os
import re
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from .model_files import GROUPS, MODELS, ModelFile

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60  # per socket operation, not per file
USER_AGENT = "frameloom-model-download"
PROGRESS_INTERVAL_S = 0.25  # between redraws of the live bar on a terminal
LOG_INTERVAL_S = 10.0  # between progress lines when stderr is a log file


class DownloadError(RuntimeError):
    """A download failed; the message is one line naming the model and the cause."""


class DownloadRequestError(DownloadError):
    """The request itself is wrong (an unknown name, an unverified model without the flag): exit 2."""


@dataclass(frozen=True)
class Outcome:
    name: str
    path: Path
    action: str  # "present", "downloaded" or "resumed"
    bytes_fetched: int
    sha256: str
    verified: bool  # False only for a file without a published hash


class _StaleResume(Exception):
    """The partial file cannot be continued; start over from byte 0."""


def resolve_names(names: Iterable[str], registry: Mapping[str, ModelFile] | None = None) -> list[str]:
    """Expand group names and drop repeats, keeping the order given."""
    registry = MODELS if registry is None else registry
    resolved: list[str] = []
    for name in names:
        members = (name,) if name in registry else GROUPS.get(name, (name,))
        for member in members:
            if member not in registry:
                raise DownloadRequestError(
                    f"unknown model {name!r} (models: {', '.join(registry)}; groups: {', '.join(GROUPS)})")
            if member not in resolved:
                resolved.append(member)
    return resolved


def download(
    names: Iterable[str],
    models_dir: str | os.PathLike,
    base_url_override: str | None = None,
    progress: bool = True,
    *,
    allow_unverified: bool = False,
    registry: Mapping[str, ModelFile] | None = None,
) -> list[Outcome]:
    """Fetch each named model (or group) into ``models_dir``; returns what was done per file.

    ``base_url_override`` fetches every file from ``{base}/{relative_path}`` instead of its
    official URL (a mirror laid out like models_dir); the hashes are checked all the same.
    """
    registry = MODELS if registry is None else registry
    models = [registry[name] for name in resolve_names(names, registry)]
    unverified = [model.name for model in models if model.sha256 is None]
    # Checked before any transfer, so a refusal never leaves half a job done.
    if unverified and not allow_unverified:
        raise DownloadRequestError(
            f"no published sha256 for {', '.join(unverified)}; pass --allow-unverified to download anyway")
    root = Path(models_dir)
    outcomes = []
    for model in models:
        url = model.url if base_url_override is None else f"{base_url_override.rstrip('/')}/{model.relative_path}"
        outcomes.append(_download_one(model, url, root / model.relative_path, progress))
    return outcomes


def _download_one(model: ModelFile, url: str, target: Path, progress: bool) -> Outcome:
    if target.is_file():
        present_hash = _file_sha256(target).hexdigest()
        if model.sha256 is None or present_hash == model.sha256:
            return Outcome(model.name, target, "present", 0, present_hash, model.sha256 is not None)
        # A corrupt or different file is replaced, but only by a verified download.
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    try:
        return _fetch(model, url, target, part, progress)
    except _StaleResume:
        part.unlink(missing_ok=True)
        return _fetch(model, url, target, part, progress)


def _fetch(model: ModelFile, url: str, target: Path, part: Path, progress: bool) -> Outcome:
    """One transfer into ``part``, continuing it when it already holds a prefix of the file."""
    offset = part.stat().st_size if part.is_file() else 0
    digest = _file_sha256(part) if offset else hashlib.sha256()
    headers = {"User-Agent": USER_AGENT}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=TIMEOUT_S)
    except urllib.error.HTTPError as error:
        if error.code == 416 and offset:
            # Nothing left to send: the .part is complete, or longer than the file.
            return _finish(model, url, target, part, digest, offset, fetched=0, resumed=True)
        raise DownloadError(f"{model.name}: HTTP {error.code} {error.reason} from {url}") from None
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        raise DownloadError(f"{model.name}: cannot reach {url}: {reason}") from None

    with response:
        resumed = offset > 0 and response.status == 206
        if resumed and _content_range_start(response.headers.get("Content-Range")) != offset:
            raise _StaleResume
        if not resumed:
            offset, digest = 0, hashlib.sha256()  # the server sent the whole file
        length = response.headers.get("Content-Length")
        expected_bytes = int(length) if length is not None else None
        total = offset + expected_bytes if expected_bytes is not None else model.size
        bar = _ProgressBar(model.name, total, offset) if progress else None
        fetched = 0
        with open(part, "ab" if resumed else "wb") as handle:
            try:
                while chunk := response.read(CHUNK_BYTES):
                    handle.write(chunk)
                    digest.update(chunk)
                    fetched += len(chunk)
                    if bar:
                        bar.update(offset + fetched)
                handle.flush()
                os.fsync(handle.fileno())
            except (OSError, http.client.HTTPException) as error:
                raise DownloadError(
                    f"{model.name}: download interrupted after {offset + fetched} bytes ({error!r}); "
                    f"run again to resume from {part}") from None
            finally:
                if bar:
                    bar.close()
    # http.client returns EOF, not an error, when the server closes early.
    if expected_bytes is not None and fetched < expected_bytes:
        raise DownloadError(
            f"{model.name}: download interrupted after {offset + fetched} of {offset + expected_bytes} bytes; "
            f"run again to resume from {part}")
    return _finish(model, url, target, part, digest, offset + fetched, fetched, resumed)


def _finish(model: ModelFile, url: str, target: Path, part: Path, digest, size: int, fetched: int,
            resumed: bool) -> Outcome:
    actual = digest.hexdigest()
    if model.sha256 is not None and actual != model.sha256:
        if resumed:
            raise _StaleResume  # the kept prefix may be from another file: one fresh try
        part.unlink(missing_ok=True)
        raise DownloadError(
            f"{model.name}: sha256 mismatch for {url}: expected {model.sha256}, got {actual} "
            f"({size} bytes, discarded)")
    os.replace(part, target)
    return Outcome(model.name, target, "resumed" if resumed else "downloaded", fetched, actual,
                   model.sha256 is not None)


def _content_range_start(header: str | None) -> int | None:
    match = re.match(r"bytes (\d+)-", header or "")
    return int(match.group(1)) if match else None


def _file_sha256(path: Path):
    """A sha256 object fed with the file's bytes, so a resumed download can keep feeding it."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest


# Where verified hashes are remembered, per file path, size and mtime: a 4 GB snapshot is
# hashed once, not on every run (the models folder itself may be read-only).
VERIFIED_CACHE = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "frameloom" / "verified-models.json"


def snapshot_check(group: str, models_dir: str | os.PathLike, cache_path: Path | None = None) -> tuple[bool, str]:
    """(complete, why not): whether every file of the pinned multi-file model ``group``
    (e.g. ``qwen2_vl``) is under ``models_dir`` with its pinned size and sha256, so a
    half-finished or foreign download never counts as the model."""
    cache_path = VERIFIED_CACHE if cache_path is None else cache_path
    try:
        verified = json.loads(cache_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        verified = {}
    learned = False
    for name in GROUPS[group]:
        model = MODELS[name]
        path = Path(models_dir) / model.relative_path
        if not path.is_file():
            return False, f"{Path(model.relative_path).name} is missing (an unfinished download?)"
        stat = path.stat()
        if model.size is not None and stat.st_size != model.size:
            return False, f"{Path(model.relative_path).name} has {stat.st_size} bytes, not the pinned {model.size}"
        stamp = f"{path.resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
        if verified.get(stamp) != model.sha256:
            actual = _file_sha256(path).hexdigest()
            if actual != model.sha256:
                return False, f"{Path(model.relative_path).name} does not match its pinned sha256"
            verified[stamp] = actual
            learned = True
    if learned:
        with contextlib.suppress(OSError):  # a read-only home only costs the hashing next time
            cache_path.parent.mkdir(parents=True, exist_ok=True)
            tmp = cache_path.with_name(cache_path.name + f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(verified, indent=1, sort_keys=True), encoding="utf-8")
            os.replace(tmp, cache_path)
    return True, "every file of the pinned snapshot verified"


def _mib(n: int) -> str:
    return f"{n / (1 << 20):.1f}"


class _ProgressBar:
    """Plain-text progress on stderr: redrawn in place on a terminal, periodic lines in a log."""

    WIDTH = 30

    def __init__(self, label: str, total: int | None, start: int):
        self.label, self.total, self.start = label, total, start
        self.stream = sys.stderr
        self.live = self.stream.isatty()
        self.began = self.last_shown = time.monotonic()
        self.done = start

    def update(self, done: int) -> None:
        self.done = done
        now = time.monotonic()
        if now - self.last_shown >= (PROGRESS_INTERVAL_S if self.live else LOG_INTERVAL_S):
            self.last_shown = now
            self._show()

    def close(self) -> None:
        self._show()
        if self.live:
            self.stream.write("\n")
        self.stream.flush()

    def _show(self) -> None:
        elapsed = max(time.monotonic() - self.began, 1e-6)
        rate = f"{_mib(round((self.done - self.start) / elapsed))} MiB/s"
        if self.total:
            fraction = min(1.0, self.done / self.total)
            filled = round(fraction * self.WIDTH)
            bar = "#" * filled + "-" * (self.WIDTH - filled)
            line = f"{self.label} [{bar}] {fraction:4.0%} {_mib(self.done)}/{_mib(self.total)} MiB {rate}"
        else:
            line = f"{self.label} {_mib(self.done)} MiB {rate}"
        self.stream.write(f"\r{line}\x1b[K" if self.live else f"{line}\n")
        self.stream.flush()


def _describe(outcome: Outcome) -> str:
    check = "sha256 verified" if outcome.verified else f"UNVERIFIED, sha256 {outcome.sha256}"
    if outcome.action == "present":
        return f"{outcome.name}: already present, {check}: {outcome.path}"
    how = "resumed, fetched" if outcome.action == "resumed" else "downloaded"
    return f"{outcome.name}: {how} {_mib(outcome.bytes_fetched)} MiB, {check}: {outcome.path}"


def _registry_listing() -> list[str]:
    lines = []
    name_width = max(len(model.name) for model in MODELS.values())
    path_width = max(len(model.relative_path) for model in MODELS.values())
    for model in MODELS.values():
        size = f"{_mib(model.size)} MiB" if model.size else "size unknown"
        check = "sha256 pinned" if model.sha256 else "no published sha256"
        lines.append(f"{model.name:{name_width}} {model.relative_path:{path_width}} {size:>12}  {check}")
    lines.extend(f"group {group}: {' '.join(members)}" for group, members in GROUPS.items() if group != "all")
    return lines


def main(argv: list[str] | None = None, prog: str = "python -m frameloom.download") -> int:
    """``prog``: how the user called it (``frameloom download-models`` through the CLI)."""
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Download model weights into models_dir, resumable and sha256-verified.")
    parser.add_argument("--models", nargs="+", metavar="NAME",
                        help=f"model or group names ({', '.join(GROUPS)}); --list shows them")
    parser.add_argument("--models-dir", default="models", help="weights root (config.yaml models_dir; default: models)")
    parser.add_argument("--base-url", help="fetch from this mirror, laid out like models_dir, instead")
    parser.add_argument("--allow-unverified", action="store_true",
                        help="also download models that have no published sha256")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    parser.add_argument("--list", action="store_true", help="list the known models and groups, then exit")
    args = parser.parse_args(argv)
    if args.list:
        print("\n".join(_registry_listing()))
        return 0
    if not args.models:
        parser.error("--models is required (or --list)")
    try:
        outcomes = download(args.models, args.models_dir, args.base_url, progress=not args.no_progress,
                            allow_unverified=args.allow_unverified)
    except DownloadError as error:
        print(f"error: {error}", file=sys.stderr)
        # A wrong request is a usage error (2, as the frameloom command's); a failed transfer is 1.
        return 2 if isinstance(error, DownloadRequestError) else 1
    print("\n".join(_describe(outcome) for outcome in outcomes))
    return 0


if __name__ == "__main__":
    sys.exit(main())
