"""The layer rule (handlers -> services -> store | wechat; the sandbox shares nothing with the client),
and one layer per library (pyproject.toml [tool.importlinter])."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

# One import of each library that a contract keeps to one layer, as a foundation module would write it.
OUT_OF_PLACE = {
    "aiomysql": "import aiomysql",
    "pymysql": "import pymysql",
    "itsdangerous": "import itsdangerous",
    "Crypto": "from Crypto.Cipher import AES",
    "tornado": "import tornado.web",
    "jinja2": "import jinja2",
}


def test_import_contracts_hold():
    result = subprocess.run([str(LINT_IMPORTS)], cwd=ROOT, capture_output=True, text=True,
                            env={"PYTHONPATH": str(ROOT / "site"), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.lower().replace("0 broken", "")


def test_each_library_contract_catches_an_import_outside_its_layer(tmp_path: Path) -> None:
    """A contract that names a module wrongly (Cryptodome for Crypto, say) would pass forever: prove each bites."""
    shutil.copytree(ROOT / "site" / "wxlogin", tmp_path / "wxlogin", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    models = tmp_path / "wxlogin" / "models.py"
    models.write_text(models.read_text("utf-8") + "\n" + "\n".join(OUT_OF_PLACE.values()) + "\n", "utf-8")

    result = subprocess.run([str(LINT_IMPORTS), "--no-cache"], cwd=tmp_path, capture_output=True, text=True,
                            env={"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"})

    assert result.returncode == 1, result.stdout + result.stderr
    missed = [name for name in OUT_OF_PLACE if f"wxlogin.models -> {name} " not in result.stdout]
    assert missed == [], result.stdout


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


def test_test_modules_have_unique_basenames():
    # pytest imports test modules by basename (no packages under tests/): two files with one name
    # stop the whole run at collection.
    from collections import Counter
    from pathlib import Path

    names = Counter(p.name for p in (Path(__file__).resolve().parents[1]).rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []
