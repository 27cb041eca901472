"""The integrations stay out of ``import codegym``'s way, and ``codegym serve`` checks its options."""

from __future__ import annotations

import subprocess
import sys

import pytest

from codegym.cli import main


def test_integration_modules_import_no_framework():
    code = (
        "import sys\n"
        "import codegym.integrations.trl, codegym.integrations.verl\n"
        "from codegym.integrations.openenv import CodeReasonClient, ServeConfig\n"
        "heavy = ('torch', 'trl', 'transformers', 'openenv', 'fastapi', 'gradio', 'datasets')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


def test_serve_is_a_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    assert "--max-sessions" in text and "CODEGYM_SERVE_TOKEN" in text and "127.0.0.1" in text


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--max-sessions", "0"], "--max-sessions"),
        (["--max-body-bytes", "100"], "max_body_bytes must be at least 1024"),
        (["--idle-timeout-s", "0"], "idle_timeout_s must be positive"),
    ],
)
def test_serve_rejects_bad_limits(options, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", *options])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
