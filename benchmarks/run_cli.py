"""Running the installed ``dietsnn-deploy`` command from a benchmark (shared by the scripts)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

CLI = Path(sys.executable).with_name("dietsnn-deploy")


def run_cli(*args: str) -> str:
    """The command's stdout; exits with its error line if it fails."""
    result = subprocess.run([str(CLI), *args], capture_output=True, text=True, check=False)
    if result.returncode:
        raise SystemExit(f"dietsnn-deploy {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout
