"""Fuzz both readers through the real CLI: mutate a valid checkpoint, its netx export and netx
files of another tool's layout many times (``tests/mutations.py``: fields deleted, retyped, reshaped, made non-finite; files cut
short; bits flipped) and run ``simulate --json`` on each mutant in-process.

Every run must end with exactly the original result or one ``error:`` line and exit 2; the
command prints how many inputs were tried per reader and kind and how each ended, and any
failure (traceback, hang, a different result without a word) with its mutation.

    python benchmarks/fuzz_readers.py --examples 200 [--device cpu] [--write]

``--device`` goes to every ``simulate`` (where the emulator runs); the original's report is
made on the same device.
"""

from __future__ import annotations

import argparse
import collections
import datetime
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from bench_device import add_device_option, parse_device  # noqa: E402
from fixtures_nets import converted_digits  # noqa: E402
from foreign_netx import KINDS as FOREIGN_KINDS  # noqa: E402
from foreign_netx import random_foreign  # noqa: E402
from mutations import (  # noqa: E402  (the shared mutation engine lives with the tests)
    KINDS,
    VERDICTS_OK,
    mutate_checkpoint,
    mutate_netx,
    run_cli,
    verdict,
)
from results_log import append_results  # noqa: E402

from dietsnn_deploy.training.checkpoint_schema import payload_digest  # noqa: E402
from dietsnn_deploy.training.checkpoints import save_checkpoint  # noqa: E402

SIMULATE = ("-n", "6", "--batch-size", "6", "--json")


def simulate_args(device: str) -> tuple[str, ...]:
    """The options of every ``simulate`` run: SIMULATE, on ``device``."""
    return (*SIMULATE, "--device", device)


def _resign(payload) -> None:
    if isinstance(payload, dict) and "digest" in payload:
        payload["digest"] = payload_digest(payload)


def _mutate_signed(source: Path, target: Path, kind: str, seed: int) -> str:
    return mutate_checkpoint(source, target, kind, seed, resign=_resign)


#: reader → (mutation, file). "checkpoint, re-signed" edits a field and signs the file again,
#: as a tool would: the checksum passes and the field checks alone must catch the change (a
#: valid new value may then give another result: counted, not a failure).
MUTATORS = {
    "checkpoint": (mutate_checkpoint, "model.pt"),
    "checkpoint, re-signed": (_mutate_signed, "model.pt"),
    "netx": (mutate_netx, "model.net"),
    **{f"netx of another tool ({k})": (mutate_netx, f"{k}.net") for k in FOREIGN_KINDS},
}
#: what a netx file of another tool needs to run (tests/foreign_netx.py); it carries no digest,
#: so a changed valid value may give another result, as for a re-signed checkpoint
FOREIGN_RUN = ("-T", "4", "--dataset", "digits")


def _run_options(reader: str, simulate: tuple[str, ...]) -> tuple[str, ...]:
    return (*FOREIGN_RUN, *simulate) if "another tool" in reader else simulate


SIGNED_KINDS = ("delete", "retype", "reshape", "nonfinite")


def make_originals(folder: Path, simulate: tuple[str, ...]) -> dict[str, dict]:
    """A converted digits vgg-tiny (T = 3), its netx export, and each one's simulate report
    (``simulate``: the command's options)."""
    model, info = converted_digits(timesteps=3, calibration=128)
    save_checkpoint(model, info, folder / "model.pt")
    code, _, err = run_cli("export", str(folder / "model.pt"))
    if code:
        raise SystemExit(f"export failed: {err}")
    for kind in FOREIGN_KINDS:
        random_foreign(kind, 0, folder / f"{kind}.net")
    reports = {}
    for reader, (_, name) in MUTATORS.items():
        code, out, err = run_cli("simulate", str(folder / name), *_run_options(reader, simulate))
        if code:
            raise SystemExit(f"simulate of the original {name} failed: {err}")
        reports[reader] = json.loads(out)
    return reports


def _unsigned(reader: str) -> bool:
    """Whether no digest guards the file: a valid changed value may change the result."""
    return reader.endswith("re-signed") or "another tool" in reader


def _acceptable(reader: str) -> tuple[str, ...]:
    return (*VERDICTS_OK, "different") if _unsigned(reader) else VERDICTS_OK


def fuzz(folder: Path, reports: dict, examples: int, seed: int, simulate: tuple[str, ...]):
    """(counts[(reader, kind)][verdict], failures) over ``examples`` mutants per reader/kind,
    each run through ``simulate`` with the options ``simulate``."""
    counts: dict[tuple[str, str], collections.Counter] = collections.defaultdict(
        collections.Counter
    )
    failures = []
    for reader, (mutate, name) in MUTATORS.items():
        suffix = Path(name).suffix
        for kind in SIGNED_KINDS if reader.endswith("re-signed") else KINDS:
            for index in range(examples):
                target = folder / f"mutant{suffix}"
                what = mutate(folder / name, target, kind, seed + index)
                options = _run_options(reader, simulate)
                outcome, detail = verdict(
                    lambda t=target, o=options: run_cli("simulate", str(t), *o), reports[reader]
                )
                counts[(reader, kind)][outcome] += 1
                if outcome not in _acceptable(reader):
                    failures.append(f"{reader} {what} (seed {seed + index}): {outcome} {detail}")
                target.unlink(missing_ok=True)
    return counts, failures


def table(counts) -> str:
    header = "| reader | mutation | tried | same result | one-line error | traceback | hang | different |"
    lines = [header, "|" + "---|" * 8]
    for (reader, kind), c in counts.items():
        tried = sum(c.values())
        lines.append(
            f"| {reader} | {kind} | {tried} | {c['same']} | {c['error']} | {c['traceback']} | "
            f"{c['hang']} | {c['different']} |"
        )
    total = collections.Counter()
    for (reader, _), c in counts.items():
        total.update(c)
        if _unsigned(reader):  # a changed valid value: a different result is right
            total["clean different"] += c["different"]
    tried = sum(v for k, v in total.items() if k != "clean different")
    clean = total["same"] + total["error"] + total["clean different"]
    lines.append(
        f"| all | all | {tried} | {total['same']} | {total['error']} | {total['traceback']} | "
        f"{total['hang']} | {total['different']} |"
    )
    return (
        "\n".join(lines)
        + f"\n\n{clean} of {tried} inputs ended cleanly ({100 * clean / tried:.1f}%)."
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--examples", type=int, default=100, help="mutants per reader and kind")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--write", action="store_true", help="append the table to RESULTS.md")
    add_device_option(
        parser,
        "passed to every simulate: where the emulator runs (auto, cpu, cuda, cuda:N or"
        " mps; default: cpu)",
    )
    args = parser.parse_args()
    simulate = simulate_args(str(parse_device(parser, args.device)))
    torch.set_num_threads(1)
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="fuzz_readers_") as tmp:
        folder = Path(tmp)
        reports = make_originals(folder, simulate)
        counts, failures = fuzz(folder, reports, args.examples, args.seed, simulate)
    seconds = time.perf_counter() - started
    text = table(counts)
    print(text)
    for failure in failures:
        print("FAILED:", failure)
    print(f"{seconds:.0f} s")
    if args.write:
        stamp = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
        command = f"python benchmarks/fuzz_readers.py --examples {args.examples} --seed {args.seed}"
        on = ""
        if args.device != "cpu":
            command += f" --device {args.device}"
            on = f" --device {simulate[-1]}"
        entry = (
            f"### {stamp} — `{command}`\n\nA converted digits vgg-tiny (T = 3), its netx "
            "export and netx files of another tool's layout (tests/foreign_netx.py: dense-, "
            "conv- and input-first, delays; run with `-T 4 --dataset digits`), each mutated "
            f"{args.examples} times per kind; every mutant run through "
            f"`simulate --json -n 6{on}` in-process ({seconds:.0f} s).\n\n{text}\n"
        )
        if failures:
            entry += "\nFailures:\n" + "".join(f"- {f}\n" for f in failures)
        append_results(entry, "## Fuzzing the checkpoint and netx readers")


if __name__ == "__main__":
    main()
