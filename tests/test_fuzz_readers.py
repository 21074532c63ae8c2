"""Property tests over both readers: any mutation of a valid checkpoint or netx file ends with
exactly the original result or one ``error:`` line and exit 2 — never a traceback, a hang,
or a different result without a word. ``benchmarks/fuzz_readers.py`` runs many more."""

from __future__ import annotations

import itertools
import json

import pytest
from fixtures_nets import converted_digits
from foreign_netx import KINDS as FOREIGN_KINDS
from foreign_netx import random_foreign
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mutations import KINDS, VERDICTS_OK, mutate_checkpoint, mutate_netx, run_cli, verdict

from dietsnn_deploy.training.checkpoint_schema import payload_digest
from dietsnn_deploy.training.checkpoints import save_checkpoint

EXAMPLES = 30  # per property in `make test`; the fuzz command runs thousands
SIMULATE = ("-n", "6", "--batch-size", "6", "--json")
FOREIGN_RUN = ("-T", "4", "--dataset", "digits")
_names = itertools.count()


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """A converted digits checkpoint, its netx export, and each one's ``simulate --json``."""
    folder = tmp_path_factory.mktemp("fuzz")
    model, info = converted_digits(timesteps=3, calibration=128)
    save_checkpoint(model, info, folder / "model.pt")
    assert run_cli("export", str(folder / "model.pt"))[0] == 0
    reports = {}
    for name in ("model.pt", "model.net"):
        code, out, err = run_cli("simulate", str(folder / name), *SIMULATE)
        assert code == 0, err
        reports[name] = json.loads(out)
    return folder, reports


def _check(originals, name: str, mutate) -> None:
    folder, reports = originals
    target = folder / f"mutant{next(_names)}{'.pt' if name.endswith('.pt') else '.net'}"
    what = mutate(folder / name, target)
    outcome, detail = verdict(lambda: run_cli("simulate", str(target), *SIMULATE), reports[name])
    target.unlink(missing_ok=True)
    assert outcome in VERDICTS_OK, f"{what}: {outcome} {detail}"


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(KINDS), seed=st.integers(0, 2**32 - 1))
def test_mutated_netx_files_give_the_same_result_or_one_error_line(originals, kind, seed):
    _check(originals, "model.net", lambda src, dst: mutate_netx(src, dst, kind, seed))


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(kind=st.sampled_from(KINDS), seed=st.integers(0, 2**32 - 1))
def test_mutated_checkpoints_give_the_same_result_or_one_error_line(originals, kind, seed):
    _check(originals, "model.pt", lambda src, dst: mutate_checkpoint(src, dst, kind, seed))


def _resign(payload: dict) -> None:
    if isinstance(payload, dict) and "digest" in payload:
        payload["digest"] = payload_digest(payload)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    kind=st.sampled_from(("delete", "retype", "reshape", "nonfinite")),
    seed=st.integers(0, 2**32 - 1),
)
def test_fields_rewritten_by_a_tool_never_crash_the_checks(originals, kind, seed):
    """A file edited and signed again passes the checksum: then the field checks alone stand
    between it and the run. A changed value may give another result (the file says so); a
    traceback or a hang never."""
    folder, reports = originals
    target = folder / f"signed{next(_names)}.pt"
    what = mutate_checkpoint(folder / "model.pt", target, kind, seed, resign=_resign)
    run = lambda: run_cli("simulate", str(target), *SIMULATE)  # noqa: E731
    outcome, detail = verdict(run, reports["model.pt"])
    target.unlink(missing_ok=True)
    assert outcome in ("same", "error", "different"), f"{what}: {outcome} {detail}"


@pytest.fixture(scope="module")
def foreign_originals(tmp_path_factory):
    """netx files of other tools (every kind of tests/foreign_netx.py) and their reports."""
    folder = tmp_path_factory.mktemp("fuzz_foreign")
    reports = {}
    for kind in FOREIGN_KINDS:
        path = random_foreign(kind, 0, folder / f"{kind}.net")
        code, out, err = run_cli("simulate", str(path), *FOREIGN_RUN, *SIMULATE)
        assert code == 0, err
        reports[kind] = json.loads(out)
    return folder, reports


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    network=st.sampled_from(FOREIGN_KINDS),
    kind=st.sampled_from(KINDS),
    seed=st.integers(0, 2**32 - 1),
)
def test_mutated_foreign_netx_files_run_or_give_one_error_line(
    foreign_originals, network, kind, seed
):
    """Another tool's file carries no digest: a changed value may run to another result (the
    file says so); a traceback or a hang never."""
    folder, reports = foreign_originals
    target = folder / f"mutant{next(_names)}.net"
    what = mutate_netx(folder / f"{network}.net", target, kind, seed)
    run = lambda: run_cli("simulate", str(target), *FOREIGN_RUN, *SIMULATE)  # noqa: E731
    outcome, detail = verdict(run, reports[network])
    target.unlink(missing_ok=True)
    assert outcome in ("same", "error", "different"), f"{network}, {what}: {outcome} {detail}"
