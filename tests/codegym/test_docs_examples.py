"""Every Python example in the README and the docs runs as written, and every relative link points at a
file that exists (the README and the docs must stay true).

An example's ``print(...)  # expected`` comment is checked against what it printed. An example that
cannot run on a CI machine (a cluster, a GPU, a server to start by hand) is fenced as ``console``, ``bash``
or ``text`` on purpose, never as ``python``.
"""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]
FENCE = re.compile(r"^```python\n(.*?)^```$", flags=re.DOTALL | re.MULTILINE)
EXAMPLES = [
    pytest.param(code, id=f"{page.relative_to(ROOT)}:{number}")
    for page in PAGES
    for number, code in enumerate(FENCE.findall(page.read_text()))
]
# [text](target) outside code; a target with a scheme (https:, mailto:) or only an anchor is not a file.
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def _generated_pages() -> set[Path]:
    """The pages docs/hooks.py adds to the site at build time (the CLI and API reference)."""
    spec = importlib.util.spec_from_file_location("docs_hooks", DOCS / "hooks.py")
    hooks = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hooks)
    return {(DOCS / page).resolve() for page in hooks.GENERATED}


def _prose(text: str) -> str:
    """The text without fenced code blocks and inline code, where a link is not a link."""
    text = re.sub(r"^(```+|~~~+).*?^\1\s*$", "", text, flags=re.DOTALL | re.MULTILINE)
    return re.sub(r"`+[^`\n]*`+", "", text)


def test_the_readme_and_docs_have_examples():
    readme = FENCE.findall((ROOT / "README.md").read_text())
    assert len(readme) >= 2
    assert len(EXAMPLES) >= 15


@pytest.mark.slow
@pytest.mark.parametrize("code", EXAMPLES)
def test_example_runs(code, capsys):
    exec(compile(code, "docs example", "exec"), {"__name__": "docs_example"})
    printed = capsys.readouterr().out
    expected_lines = re.findall(r"print\(.*\)\s+# (.+)$", code, flags=re.MULTILINE)
    for expected in expected_lines:
        assert expected.strip() in printed, f"the example promised {expected!r}, printed {printed!r}"


def test_every_relative_link_points_at_a_file():
    generated = _generated_pages()
    broken = []
    for page in PAGES:
        for target in LINK.findall(_prose(page.read_text())):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target) or target.startswith("#"):
                continue
            path = (page.parent / target.split("#", 1)[0]).resolve()
            if not (path.exists() or path in generated):
                broken.append(f"{page.relative_to(ROOT)}: {target}")
    assert not broken, "links to files that do not exist:\n" + "\n".join(broken)


def test_the_docs_never_point_outside_the_repository():
    for page in PAGES:
        assert "/work/" not in page.read_text(), (
            f"{page.relative_to(ROOT)} names a path outside the repository"
        )
