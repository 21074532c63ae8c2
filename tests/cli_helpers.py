"""Running the CLI in-process as the console script would, and checking its error lines."""

from __future__ import annotations

import sys

from dietsnn_deploy import cli


def run_main(monkeypatch, capsys, *args: str) -> tuple[int, str, str]:
    """Run ``cli.main`` with ``args``; returns (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["dietsnn-deploy", *args])
    code = 0
    try:
        cli.main()
    except SystemExit as exc:
        code = exc.code
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_error_line(err: str, expected: str) -> None:
    """stderr is exactly one ``error: …`` line containing ``expected``, no traceback."""
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ") and expected in lines[0], lines[0]
