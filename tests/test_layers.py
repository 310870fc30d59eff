"""Layering rules that keep workers free of the web stack."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_importing_tasks_does_not_import_flask(tmp_path):
    code = (
        "import sys, tasks; "
        "bad = sorted(m for m in sys.modules "
        "if m == 'flask' or m.startswith(('flask.', 'flask_'))); "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"DATA_DIR": str(tmp_path), "PATH": "/usr/bin:/bin", "SHOP_ENV": "development"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_only_the_web_package_imports_flask():
    offenders = []
    for path in (ROOT / "orders").rglob("*.py"):
        if "web" in path.relative_to(ROOT / "orders").parts:
            continue
        text = path.read_text()
        if "import flask" in text or "from flask" in text:
            offenders.append(str(path.relative_to(ROOT)))
    assert offenders == []
