"""Take the README's screenshots from the shipped corpus: a pay question, its table, chart and sources.

    .venv/bin/python docs/screenshots.py              # writes docs/chat-desktop.png and docs/chat-phone.png

It starts `app.py` on the shipped `corpus/` with a temporary index, asks in headless Chromium at 1366×900 and
390×844 what a user would ask first, and saves what the page shows, so the pictures stay true to the app.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

from load import start_app, stop_app  # noqa: E402  (bench/load.py: one way to launch app.py and stop it)

CHROMIUM = "/usr/bin/chromium"
QUESTION = "How much do ML engineers earn at each level?"
ANSWERS = '#chat [data-testid="bot"]:not(:has([data-testid="matplotlib"]))'
SCREENS = {"desktop": {"width": 1366, "height": 900}, "phone": {"width": 390, "height": 844}}


def take(url: str, out: Path, chromium: str = CHROMIUM) -> list[Path]:
    """Ask QUESTION on each screen size and save the page as ``out/chat-<screen>.png``."""
    from playwright.sync_api import expect, sync_playwright

    saved = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
        )
        for screen, size in SCREENS.items():
            phone = screen == "phone"
            page = browser.new_page(viewport=size, is_mobile=phone, has_touch=phone)
            page.goto(url, wait_until="domcontentloaded")
            box = page.locator('textarea[data-testid="textbox"]')
            box.wait_for(timeout=120_000)
            box.fill(QUESTION)
            box.press("Enter")
            answer = page.locator(ANSWERS).first
            expect(answer.locator("details.answer-sources")).to_be_attached(timeout=120_000)
            page.locator('button[data-testid="stop-button"]').wait_for(state="hidden", timeout=120_000)
            expect(page.locator('[data-testid="matplotlib"] img')).to_be_visible(timeout=30_000)
            # The question at the top of the chat, then the answer's table, its Sources and its chart; on a desktop
            # the side panel shows the passage it cites (the newest answer's, without a click).
            # (On a phone the chat is shorter: the answer from its first line.)
            first = answer if phone else page.locator("#chat [data-testid='user']").first
            first.evaluate("el => el.scrollIntoView({block: 'start'})")
            if not phone:
                expect(page.locator("#side-sources .src-1")).to_be_visible()
            page.wait_for_timeout(500)
            path = out / f"chat-{screen}.png"
            page.screenshot(path=str(path))
            saved.append(path)
            page.close()
        browser.close()
    return saved


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="folder for the pictures (default docs/)")
    parser.add_argument("--chromium", default=CHROMIUM, help=f"Chromium to drive (default {CHROMIUM})")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        process, url = start_app(
            str(Path(folder) / "index"), extra=("--corpus", str(ROOT / "corpus"), "--feedback", str(Path(folder) / "fb"))
        )
        try:
            for path in take(url, args.out, args.chromium):
                print(f"wrote {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}")
        finally:
            stop_app(process)


if __name__ == "__main__":
    main()
