"""Appending dated entries to benchmarks/RESULTS.md (shared by the benchmark scripts)."""

from __future__ import annotations

from pathlib import Path

RESULTS = Path(__file__).with_name("RESULTS.md")


def append_results(entry: str, heading: str, path: Path = RESULTS) -> None:
    """Append ``entry`` under ``heading`` (adding the heading when it is not the last ``##``
    section); never rewrites what is already in the file."""
    text = path.read_text() if path.exists() else ""
    sections = [line.strip() for line in text.splitlines() if line.startswith("## ")]
    prefix = "# Benchmark results\n" if not text else ("" if text.endswith("\n") else "\n")
    if not sections or sections[-1] != heading:
        prefix += f"\n{heading}\n\n"
    with path.open("a") as handle:
        handle.write(prefix + entry)
