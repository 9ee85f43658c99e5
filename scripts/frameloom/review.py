"""The review page: browse frames by strategy, see analysis, decision and outputs, override or exclude.

``render_review_page`` writes a static page (results/review.html, a rule
output) with the report's data inline. Opened as a file it is read-only;
served by ``python -m frameloom.review`` (bound to 127.0.0.1) it saves each
override to the overrides file (frameloom.overrides) that the decide step
reads, so the next ``snakemake`` run redoes only the frames whose strategy changed.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import yaml

from .config import load_project_config
from .imageio import read_json
from .layout import RUN_FLAGS_FILE, demo_frames_dir
from .overrides import load_overrides, save_overrides
from .pages import inline_json, render_page, template_text
from .registry import STRATEGIES
from .report_html import input_file, result_images
from .schema import ConfigError

HOST = "127.0.0.1"
# A custom header forces a CORS preflight (which this server never grants), so
# another site open in the same browser cannot post overrides.
WRITE_HEADER = "X-Frameloom-Review"
MAX_BODY = 64 * 1024


def _served_input(path: Path, out_dir: Path, input_root: Path) -> str:
    """The server's URL of an input frame: under /input/ (input_dir) or /out/ (a video's extracted frames)."""
    path = path.resolve()
    for prefix, root in (("/input/", input_root.resolve()), ("/out/", out_dir.resolve())):
        if path.is_relative_to(root):
            return prefix + path.relative_to(root).as_posix()
    return ""


def _frame_entry(result: dict, page_dir: Path, out_dir: Path, input_root: Path) -> dict:
    images = result_images(result)
    source = result["frame"]
    frame_file = input_file(result, input_root)
    return {
        "id": result["frame_id"],
        "source": source,
        "input": os.path.relpath(frame_file, page_dir),
        "input_served": _served_input(frame_file, out_dir, input_root),
        "strategy": result["strategy"],
        "status": "excluded" if result.get("excluded") else "ok" if result["success"] else "failed",
        "confidence": result["confidence"],
        "reasoning": result["reasoning"],
        "exclusion_reason": result.get("exclusion_reason"),
        "error": result["error"],
        "analysis": result.get("analysis", {}),
        "override": result.get("override"),
        "outputs": [{"file": os.path.relpath(p, page_dir), "served": os.path.relpath(p, out_dir),
                     "backend": result["backends"].get(p, "")} for p in images],
    }


def render_review_page(report: dict, page_path: Path, out_dir: Path, input_root: Path,
                       enabled: list[str]) -> str:
    """The page, with every frame's data inline (a file:// page cannot fetch)."""
    page_dir = page_path.parent
    data = {
        "strategies": enabled,
        "frames": [_frame_entry(r, page_dir, out_dir, input_root) for r in report["results"]],
    }
    return render_page("review.html.j2", title=f"frameloom review: {out_dir.name}", data=inline_json(data),
                       style=template_text("review.css"), script=template_text("review.js"))




def _inside(root: Path, relative: str) -> Path | None:
    """``root/relative`` when ``relative`` stays inside ``root`` ('..', absolute paths and NUL are refused).

    Symlinks are followed as the user laid them out: the check is on the path, not its target."""
    if "\0" in relative or relative.startswith("/") or ".." in Path(relative).parts:
        return None
    return root / relative


class ReviewServer(ThreadingHTTPServer):
    """Serves the review page, the images it shows, and the overrides API; nothing else."""

    def __init__(self, port: int, page: Path, out_dir: Path, input_root: Path, overrides_path: Path,
                 overrides_source: str, frames: set[str]):
        self.page = page
        self.roots = {"out": out_dir, "input": input_root}
        self.overrides_path = overrides_path
        self.overrides_source = overrides_source
        self.frames = frames
        super().__init__((HOST, port), ReviewHandler)

    def read_overrides(self) -> dict:
        return load_overrides(self.overrides_path, self.overrides_source)

    def set_override(self, change: dict) -> dict:
        """Apply one change from the page and save the file; returns the new overrides."""
        frame = change.get("frame")
        if frame not in self.frames:
            raise ValueError(f"unknown frame: {frame!r}")
        strategy, exclude, note = change.get("strategy"), bool(change.get("exclude")), str(change.get("note") or "")
        if strategy is not None and strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy: {strategy!r} (one of {', '.join(STRATEGIES)})")
        if strategy and exclude:
            raise ValueError("give a strategy or exclude, not both")
        frames = self.read_overrides()
        frames.pop(frame, None)
        if exclude:
            frames[frame] = {"exclude": True, "note": note}
        elif strategy:
            frames[frame] = {"strategy": strategy, "note": note}
        save_overrides(self.overrides_path, frames)
        return self.read_overrides()


class ReviewHandler(BaseHTTPRequestHandler):
    server: ReviewServer

    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        sys.stderr.write(f"review: {format % args}\n")

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, document: dict) -> None:
        self._send(status, json.dumps(document).encode(), "application/json")

    def do_GET(self):  # noqa: N802 (http.server's name)
        path = unquote(urlsplit(self.path).path)
        if path in ("/", "/review.html"):
            if not self.server.page.is_file():
                return self._json(HTTPStatus.NOT_FOUND, {"error": f"{self.server.page} missing: run snakemake first"})
            return self._send(HTTPStatus.OK, self.server.page.read_bytes(), "text/html; charset=utf-8")
        if path == "/api/overrides":
            try:
                return self._json(HTTPStatus.OK, {"frames": self.server.read_overrides()})
            except ConfigError as error:
                return self._json(HTTPStatus.CONFLICT, {"error": str(error)})
        root_name, _, relative = path.lstrip("/").partition("/")
        target = _inside(self.server.roots[root_name], relative) if root_name in self.server.roots else None
        if target is None:
            return self._json(HTTPStatus.FORBIDDEN, {"error": f"outside the served folders: {path}"})
        if not target.is_file():
            return self._json(HTTPStatus.NOT_FOUND, {"error": f"no such file: {path}"})
        content_type = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
                        ".webp": "image/webp", ".bmp": "image/bmp"}.get(target.suffix.lower())
        if content_type is None:
            return self._json(HTTPStatus.FORBIDDEN, {"error": f"not an image: {path}"})
        return self._send(HTTPStatus.OK, target.read_bytes(), content_type)

    def do_POST(self):  # noqa: N802
        if urlsplit(self.path).path != "/api/overrides":
            return self._json(HTTPStatus.NOT_FOUND, {"error": "no such endpoint"})
        if self.headers.get(WRITE_HEADER) != "1" or self.headers.get_content_type() != "application/json":
            return self._json(HTTPStatus.FORBIDDEN,
                              {"error": f"needs Content-Type application/json and {WRITE_HEADER}: 1"})
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return self._json(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, {"error": "request too large"})
        try:
            change = json.loads(self.rfile.read(length))
            return self._json(HTTPStatus.OK, {"frames": self.server.set_override(change)})
        except (ValueError, ConfigError, AttributeError) as error:
            return self._json(HTTPStatus.BAD_REQUEST, {"error": str(error)})


def make_server(configfile: str, port: int, workflow_dir: Path, output_dir: str | None = None) -> ReviewServer:
    """The server for the project in the current folder, configured like the workflow run;
    with ``output_dir``, for that run's folder (configured by its frameloom-run.yaml when
    `frameloom run` made it, else by ``configfile`` with that output folder)."""
    overrides = {}
    if output_dir is not None:
        flags = Path(output_dir, RUN_FLAGS_FILE)
        overrides = yaml.safe_load(flags.read_text(encoding="utf-8")) if flags.is_file() else {}
        overrides["output_dir"] = output_dir
    run = load_project_config(Path.cwd(), workflow_dir, overrides, configfile=configfile)
    out_dir = run.resolve(run.output_dir)
    report_path = out_dir / "processing_report.json"
    if not report_path.is_file():
        raise ConfigError(f"{report_path}: missing: run snakemake first")
    frames = {r["frame_id"] for r in read_json(report_path)["results"]}
    input_root = Path(demo_frames_dir(str(out_dir))) if run.is_demo else run.resolve(run.run["input_dir"])
    return ReviewServer(port, out_dir / "review.html", out_dir, input_root,
                        run.resolve(run.overrides_file), run.overrides_file, frames)


def main(argv: list[str] | None = None, prog: str = "python -m frameloom.review") -> int:
    """``prog``: how the user called it (``frameloom review`` through the CLI)."""
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.replace("``", ""),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("output_dir", nargs="?", help="the run's output folder (default: the config's output_dir)")
    parser.add_argument("--configfile", default="config/config.yaml", help="the run's config (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8765, help="port on 127.0.0.1; 0 picks a free one")
    args = parser.parse_args(argv)
    try:
        server = make_server(args.configfile, args.port, Path(__file__).resolve().parents[2], args.output_dir)
    except (ConfigError, OSError) as error:
        print(f"frameloom review: {error}", file=sys.stderr)
        return 2
    print(f"review page: http://{HOST}:{server.server_address[1]}/ (Ctrl-C stops)", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
