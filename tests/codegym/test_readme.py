"""Every Python example in the README runs as written (the README must stay true)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[2] / "README.md"
EXAMPLES = re.findall(r"^```python\n(.*?)^```$", README.read_text(), flags=re.DOTALL | re.MULTILINE)


def test_the_readme_has_examples():
    assert len(EXAMPLES) >= 3


@pytest.mark.parametrize("index", range(len(EXAMPLES)))
def test_readme_example_runs(index, capsys):
    exec(compile(EXAMPLES[index], f"README example {index}", "exec"), {"__name__": "readme_example"})
    printed = capsys.readouterr().out
    for expected in re.findall(r"print\(.*\)\s+# (.+)$", EXAMPLES[index], flags=re.MULTILINE):
        assert expected.strip() in printed, (
            f"README example {index} promised {expected!r}, printed {printed!r}"
        )
