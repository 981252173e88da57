"""Every script in examples/ runs in its --quick mode (as a user would run it)."""

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))
# what a script needs beyond fastsnn's own dependencies; without it the script says so
NEEDS = {"event_pipeline_tonic.py": "tonic", "export_onnx.py": "onnxruntime"}


def _importable(module: str) -> bool:
    if importlib.util.find_spec(module) is None:
        return False
    return subprocess.run([sys.executable, "-c", f"import {module}"],
                          capture_output=True).returncode == 0


def test_the_examples_are_the_documented_ones():
    index = (ROOT / "docs" / "index.md").read_text()
    assert EXAMPLES and all(f"`{p.name}`" in index for p in EXAMPLES)


@pytest.mark.parametrize("script", EXAMPLES, ids=lambda p: p.name)
def test_example_runs_quick(script):
    r = subprocess.run([sys.executable, str(script), "--quick"], cwd=ROOT, text=True,
                       capture_output=True, timeout=900)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    need = NEEDS.get(script.name)
    if need is not None and not _importable(need):
        assert r.stdout.startswith("skipped:") and need in r.stdout
        pytest.skip(f"{script.name} needs {need}, not importable here")
    assert "skipped" not in r.stdout and r.stdout.strip()
