"""The terminal UI: plain lines as they are, styled ones through rich."""

from __future__ import annotations

import pytest
from sls_py.ui import UI


def test_info_lines_are_written_whole_and_warnings_go_through_rich(
    capsys: pytest.CaptureFixture[str],
) -> None:
    ui = UI(color=False)
    long = " ".join(["word"] * 40)  # longer than rich's 80 columns off a terminal
    ui.info(long)
    assert ui._console is None  # no rich console for a plain line
    ui.warn("careful")
    ui.step("create", "function", "app-dev-f", "new")
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == f"{long}\nwarning: careful\n create function app-dev-f new\n"


def test_quiet_drops_progress_but_not_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    ui = UI(quiet=True, color=False)
    ui.info("progress")
    ui.step("create", "function", "f")
    ui.warn("still shown")
    assert capsys.readouterr().err == "warning: still shown\n"
