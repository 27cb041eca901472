"""The codegym command, run for real."""

from __future__ import annotations

import pytest

from codegym.cli import main


def test_sandbox_humaneval_passes_canonical_and_fails_broken(capsys):
    assert main(["sandbox", "humaneval", "--sandbox", "local", "--limit", "4", "--workers", "1"]) == 0
    out = capsys.readouterr().out
    assert "canonical solutions passed  4/4" in out
    assert "broken solutions passed     0/4" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["sandbox", "humaneval", "--workers", "0"], "--workers must be at least 1"),
        (["sandbox", "humaneval", "--sandbox", "kubernetes"], "invalid choice"),
        (["sandbox"], "required"),
    ],
)
def test_bad_arguments_get_a_message_not_a_traceback(capsys, argv, message):
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
