"""make screenshots: a PNG of every page state (desktop, phone, WeChat browser; Chinese and English) and one
index.html to look at them all in a minute.

The states are the accessibility test's (tests/browser/test_accessibility.py): it walks each one against the
real app, MariaDB and the sandbox, and with WXLOGIN_SCREENSHOTS set it saves a full-page PNG before its axe
check. Usage: python scripts/screenshots.py [OUT_DIR] [pytest args, e.g. -k login]; OUT_DIR defaults to
screenshots/ (ignored by git).
"""

from __future__ import annotations

import html
import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEST = "tests/browser/test_accessibility.py"


def gallery(out: Path) -> Path:
    """index.html: one row per page state, its screenshots side by side (profile and language in the caption)."""
    rows: dict[str, list[Path]] = defaultdict(list)
    for png in sorted(out.glob("*.png")):
        rows[png.stem.split("--")[0]].append(png)
    parts = ["<!doctype html><meta charset='utf-8'><title>wxlogin screenshots</title>",
             "<style>body{font:14px sans-serif;margin:16px;background:#eee}h2{margin:24px 0 8px}"
             ".row{display:flex;gap:12px;overflow-x:auto;align-items:flex-start}figure{margin:0;background:#fff;"
             "padding:6px}figure img{display:block;height:420px;width:auto}figcaption{padding-top:4px}</style>",
             f"<h1>wxlogin: {sum(len(v) for v in rows.values())} screenshots of {len(rows)} page states</h1>"]
    for state, pngs in rows.items():
        parts.append(f"<h2 id='{html.escape(state)}'>{html.escape(state)}</h2><div class='row'>")
        for png in pngs:
            _, profile, lang = png.stem.split("--")
            parts.append(f"<figure><a href='{html.escape(png.name)}'><img src='{html.escape(png.name)}' "
                         f"loading='lazy' alt=''></a><figcaption>{profile} · {lang}</figcaption></figure>")
        parts.append("</div>")
    index = out / "index.html"
    index.write_text("\n".join(parts), encoding="utf-8")
    return index


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv and not argv[0].startswith("-") else ROOT / "screenshots"
    extra = argv[1:] if argv and not argv[0].startswith("-") else argv
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("*.png"):
        old.unlink()
    env = {**os.environ, "WXLOGIN_SCREENSHOTS": str(out)}
    # The axe verdicts are the test's business (make test); here a failing check still leaves its screenshot.
    subprocess.run([sys.executable, "-m", "pytest", TEST, "-q", "--no-header", "-p", "no:cacheprovider",
                    *extra], cwd=ROOT, env=env, check=False)
    pngs = list(out.glob("*.png"))
    if not pngs:
        print("no screenshots were written (is Chromium installed? scripts/ensure-chromium.sh)", file=sys.stderr)
        return 1
    print(f"{len(pngs)} screenshots: {gallery(out)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
