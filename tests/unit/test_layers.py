"""The layer rule (handlers -> services -> store | wechat; the sandbox shares nothing with the client)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=ROOT, capture_output=True, text=True,
                            env={"PYTHONPATH": str(ROOT / "site"), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.lower().replace("0 broken", "")


def test_only_the_store_contains_sql():
    offenders = []
    for path in (ROOT / "site/wxlogin").rglob("*.py"):
        if "store" in path.parts:
            continue
        text = path.read_text("utf-8")
        for keyword in ("SELECT ", "INSERT INTO", "UPDATE users", "DELETE FROM"):
            if keyword in text:
                offenders.append(f"{path.relative_to(ROOT)}: {keyword}")
    assert offenders == []
