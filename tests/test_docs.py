"""The documentation site: it builds strictly, its code blocks run, the README stays short.

- `mkdocs build --strict` (API reference from the docstrings, benchmark tables from the JSON that
  `benchmarks/` writes) fails on a broken link, a missing docstring target or a missing result file;
- every ```python block of a page runs, in order, in one fresh interpreter per page, on the
  embedded model (the guides show what a user types);
- the README keeps to its 250 lines and names no issue numbers.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "python" in p.read_text(encoding="utf-8"))
BLOCK = re.compile(r"^```python[^\n]*\n(.*?)^```", re.S | re.M)


def python_blocks(page: Path) -> list[str]:
    """The page's ```python blocks, in order. Returns: their code."""
    return BLOCK.findall(page.read_text(encoding="utf-8"))


def test_blocks_are_found() -> None:
    blocks = python_blocks(DOCS / "guides" / "attribution.md")
    assert len(blocks) >= 4 and "attribute(" in blocks[0]


@pytest.mark.slow
def test_mkdocs_build_is_strict(tmp_path) -> None:
    out = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                         cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    index = (tmp_path / "site" / "index.html").read_text(encoding="utf-8")
    assert "fonts.googleapis" not in index      # the site loads no font from the internet
    assert (tmp_path / "site" / "reference" / "attribution" / "index.html").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("page", [p for p in PAGES if python_blocks(p)], ids=lambda p: str(p.relative_to(DOCS)))
def test_code_blocks_run(page: Path, tmp_path) -> None:
    code = "\n\n".join(python_blocks(page))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "MPLBACKEND": "Agg"}
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=900)
    assert out.returncode == 0, f"{page.name}:\n{out.stderr[-4000:]}"


def test_readme_is_short_and_names_no_issue() -> None:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 250
    assert not re.search(r"\bissue\s*#?\d+", text, re.I)
