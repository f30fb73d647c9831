"""The README's Python example is clients/python/examples/quickstart.py, and
it runs as printed against a real server."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from conftest import REPO

QUICKSTART = Path(__file__).resolve().parents[1] / "examples" / "quickstart.py"


def readme_block(language: str) -> str:
    readme = (REPO / "README.md").read_text()
    _, found, section = readme.partition("## From other languages")
    assert found, "README.md has no '## From other languages' section"
    block = re.search(rf"```{language}\n(.*?)```", section, re.DOTALL)
    assert block, f"no ```{language} block in README's 'From other languages'"
    return block.group(1)


def test_readme_example_is_the_quickstart_file():
    assert readme_block("python") == QUICKSTART.read_text()


def test_quickstart_runs_as_printed(server):
    env = {**os.environ, "RETAKE_SERVER": f"http://{server}", "PYTHONPATH": str(QUICKSTART.parents[1])}
    out = subprocess.run(
        [sys.executable, str(QUICKSTART)], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "1 EVENT_KIND_RUN_STARTED "
    assert any(line.endswith("EVENT_KIND_RUN_FINISHED ") for line in lines)
    assert lines[-4:] == ["fetch same", "summarize_a same", "summarize_b changed", "publish changed"]
