"""Regenerate the README's screenshots: the demo's store, served locally, shot in headless Chromium.

    python scripts/screenshots.py                  # docs/img/*.png at 1600 px, *-800.png at 800 px
    python scripts/screenshots.py --out /tmp/shots --widths 1600

Runs ``runtrace demo`` into a temporary store, serves it with ``runtrace serve``'s
app on 127.0.0.1, and shoots the Runs page, the looping run with its most
expensive call open in the side panel, the Spend page by model family and the
What-if page. Then it replays a recorded Claude Code session (with tool details:
tests/fixtures/agents/claude-project) into a second store, over OTLP/JSON as
Claude Code sent it, and shoots that session's run page (``claude-session.png``,
README's "Coding agents"). Needs Playwright and a Chromium (Debian's
``/usr/bin/chromium`` by default, ``--chromium`` to change it); nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from socket import AF_INET, SOCK_STREAM, socket
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "docs" / "img"
CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync"]
LOOPING_RUN = "make invoices test pass"  # the demo's run that loops and re-reads a file
CLAUDE_RECORDING = ROOT / "tests" / "fixtures" / "agents" / "claude-project"  # OTEL_LOG_TOOL_DETAILS=1
SIGNALS = ("metrics", "logs", "traces")


@contextmanager
def serving(store: Path) -> Iterator[str]:
    """The web UI on a free 127.0.0.1 port, in a thread, for as long as the block runs."""
    import uvicorn

    from runtrace.server import create_app

    with closing(socket(AF_INET, SOCK_STREAM)) as probe:
        probe.bind(("127.0.0.1", 0))
        port = int(probe.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(create_app(store), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, name="screenshots-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def worst_call(store: Path) -> tuple[str, str]:
    """(run id, span id) of the looping run's most expensive LLM call: what the run screenshot opens."""
    from runtrace.store.db import Store
    from runtrace.store.queries import get_run, list_runs

    with Store.open(store, create=False) as opened:
        run_id = next(r["id"] for r in list_runs(opened, limit=100) if r["name"] == LOOPING_RUN)
        run = get_run(opened, run_id)
    assert run is not None
    calls = [s for s in run["spans"] if s["kind"] == "llm" and s["cost_usd"] is not None]
    return run_id, max(calls, key=lambda s: s["cost_usd"])["span_id"]


def replay_recording(base: str, recording: Path) -> None:
    """Send a recorded agent session's OTLP/JSON requests to ``base`` as the agent sent them, signal by signal."""
    import httpx

    for signal in SIGNALS:
        path = recording / f"{signal}.jsonl"
        if not path.exists():
            continue
        for line in path.read_text(encoding="utf-8").splitlines():
            body = json.loads(line).get("body")
            if body is None:  # the trimmer's last {"_trimmed": N} line
                continue
            answer = httpx.post(f"{base}/v1/{signal}", content=json.dumps(body),
                                headers={"Content-Type": "application/json"}, timeout=60)
            if answer.status_code != 200:
                raise RuntimeError(f"{path}: POST /v1/{signal} answered {answer.status_code}: {answer.text}")


def only_run(store: Path) -> str:
    """The id of the one run in ``store`` (a replayed session is one run)."""
    from runtrace.store.db import Store
    from runtrace.store.queries import list_runs

    with Store.open(store, create=False) as opened:
        runs = list_runs(opened, limit=2)
    if len(runs) != 1:
        raise RuntimeError(f"expected one run in {store}, found {len(runs)}")
    return str(runs[0]["id"])


def demo_pages(store: Path) -> list[tuple[str, str, str | None]]:
    """(file name, path, what to wait for) of the demo's screenshots."""
    run_id, span_id = worst_call(store)
    return [("runs", "/", None), ("run", f"/runs/{run_id}#span={span_id}", "#span-panel dl.facts"),
            ("spend", "/spend?by=family&period=all", None), ("whatif", "/whatif", None)]


def shoot(base: str, pages: Sequence[tuple[str, str, str | None]], out: Path, widths: Sequence[int],
          chromium: str) -> list[Path]:
    from playwright.sync_api import sync_playwright

    written: list[Path] = []
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=ARGS)
        try:
            for width in widths:
                context = browser.new_context(viewport={"width": width, "height": 1000}, color_scheme="light")
                page: Any = context.new_page()
                page.on("pageerror", lambda exc: errors.append(str(exc)))
                page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
                for name, path, ready in pages:
                    page.goto(base + path)
                    if ready:
                        page.locator(ready).wait_for()
                    page.evaluate("() => window.scrollTo(0, 0)")
                    target = out / (f"{name}.png" if width == max(widths) else f"{name}-{width}.png")
                    page.screenshot(path=str(target), full_page=True)
                    written.append(target)
                context.close()
        finally:
            browser.close()
    if errors:
        raise RuntimeError("the pages logged errors: " + "; ".join(errors))
    return written


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="folder for the PNGs (default docs/img)")
    parser.add_argument("--widths", default="800,1600", help="window widths in px, comma-separated")
    parser.add_argument("--chromium", default=CHROMIUM, help="the Chromium binary (default /usr/bin/chromium)")
    args = parser.parse_args(argv)
    try:
        widths = sorted({int(w) for w in args.widths.split(",") if w.strip()})
    except ValueError:
        parser.error(f"--widths {args.widths!r} is not a comma-separated list of integers")
    if not widths or min(widths) < 320:
        parser.error("--widths needs at least one width of 320 px or more")
    if not Path(args.chromium).exists():
        parser.error(f"no Chromium at {args.chromium} (apt-get install chromium, or pass --chromium)")
    from runtrace import demo

    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="runtrace-shots-") as tmp:
        store = Path(tmp) / "demo.db"
        demo.run_demo(store)
        with serving(store) as base:
            written = shoot(base, demo_pages(store), args.out, widths, args.chromium)
        session = Path(tmp) / "claude.db"
        from runtrace.store.db import Store

        Store.open(session).close()
        with serving(session) as base:
            replay_recording(base, CLAUDE_RECORDING)
            written += shoot(base, [("claude-session", f"/runs/{only_run(session)}", None)], args.out, widths,
                             args.chromium)
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
