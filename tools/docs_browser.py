"""Looks at the built site in headless Chromium: ``python -m tools.docs_browser site``.

Serves the built site on 127.0.0.1, opens three pages (the home page, a guide with code,
the reference of `MultimodalDataset`) and fails unless each shows the navigation, its code
blocks and its images, and the reference shows the class with its methods. It writes a
screenshot of the home page to ``site/home.png`` (``--screenshot docs/images/home.png``
refreshes the committed one).

Chromium is Debian's ``/usr/bin/chromium`` when it is installed (``.ci/run`` installs
it), or ``$CHROMIUM``, or Playwright's own (``python -m playwright install chromium``).
"""

from __future__ import annotations

import argparse
import functools
import os
import shutil
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

#: What a browser started by a test needs on a machine without a network or a screen.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

#: The pages looked at, and the text each must show.
PAGES = {
    "": "MultimodalDataset(",
    "getting-started/files/": "from_table(",
    "reference/dataset/": "get_state",
}


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass


@contextmanager
def served(site: Path) -> Iterator[str]:
    """The site served over HTTP on a free port of 127.0.0.1, until the block ends."""
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def chromium() -> str | None:
    """Debian's Chromium, or $CHROMIUM; None: Playwright's own."""
    found = os.environ.get("CHROMIUM") or shutil.which("chromium")
    return found or None


def check_page(page, url: str, expected: str) -> list[str]:
    """What is wrong with the page at ``url``, as the browser shows it."""
    problems = []
    response = page.goto(url, wait_until="networkidle")
    if response is None or response.status != 200:
        return [f"{url}: HTTP {response.status if response else 'no response'}"]
    nav = page.locator("nav.md-nav--primary").first
    links = nav.locator("a.md-nav__link").count()
    text = nav.text_content() or ""
    for section in ("Getting started", "Guides", "Reference", "Troubleshooting"):
        if section not in text:
            problems.append(f"{url}: the navigation has no {section!r} ({links} links)")
    if links < 20:
        problems.append(f"{url}: the navigation has only {links} links")
    code = page.locator(".highlight pre code").all_inner_texts()
    if not any(expected in block for block in code) and expected not in page.inner_text("body"):
        problems.append(f"{url}: no code block or text shows {expected!r}")
    if not code:
        problems.append(f"{url}: no code block is rendered")
    broken = page.evaluate(
        "[...document.images].filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)"
    )
    if broken:
        problems.append(f"{url}: images that did not load: {broken}")
    return problems


def check_reference(page, url: str) -> list[str]:
    page.goto(url, wait_until="networkidle")
    problems = []
    heading = page.locator('[id="multimodal_dataset.MultimodalDataset"]')
    if heading.count() != 1 or "MultimodalDataset" not in heading.inner_text():
        problems.append(f"{url}: no heading for multimodal_dataset.MultimodalDataset")
    for member in ("get_state", "check", "show_batch", "element_spec"):
        if page.locator(f'[id="multimodal_dataset.MultimodalDataset.{member}"]').count() != 1:
            problems.append(f"{url}: MultimodalDataset.{member} is not documented")
    return problems


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("site", type=Path, help="the built site (mkdocs build)")
    parser.add_argument("--screenshot", type=Path, help="also copy the home page's here")
    args = parser.parse_args(argv)
    if not (args.site / "index.html").is_file():
        print(f"{args.site}/index.html is missing: build the site first (mkdocs build).")
        return 1
    from playwright.sync_api import sync_playwright

    problems: list[str] = []
    with served(args.site) as root, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for path, expected in PAGES.items():
            problems += check_page(page, root + path, expected)
        problems += check_reference(page, root + "reference/dataset/")
        page.goto(root, wait_until="networkidle")
        shot = args.site / "home.png"
        page.screenshot(path=str(shot))
        browser.close()
    if args.screenshot:
        shutil.copyfile(shot, args.screenshot)
    for problem in problems:
        print(problem)
    print(f"{len(PAGES)} pages looked at in Chromium: " + ("ok" if not problems else "FAILED"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
