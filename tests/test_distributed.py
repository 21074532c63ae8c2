"""Data parallel across processes (torchrun, gloo on the CPU): 2 ranks × batch B train to the
same weights as 1 rank × batch 2B, metrics are summed over ranks, and a torchrun run of
``train-ann`` writes exactly one checkpoint."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
TORCHRUN = Path(sys.executable).with_name("torchrun")
pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(HERE.parent)}


def _torchrun(*args: str) -> subprocess.CompletedProcess:
    command = [str(TORCHRUN), "--standalone", "--nproc_per_node=2", *args]
    result = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_two_ranks_reach_the_weights_of_one_rank_with_twice_the_batch(tmp_path):
    _torchrun(str(HERE / "ddp_worker.py"), "--batch", "16", "--out", str(tmp_path / "two.pt"))
    single = subprocess.run(
        [sys.executable, str(HERE / "ddp_worker.py"), "--batch", "32", "--out",
         str(tmp_path / "one.pt")],
        capture_output=True, text=True, env=_env(), timeout=600,
    )  # fmt: skip
    assert single.returncode == 0, single.stderr[-3000:]
    two = torch.load(tmp_path / "two.pt", weights_only=True)
    one = torch.load(tmp_path / "one.pt", weights_only=True)
    initial = one["initial"]
    moved = 0
    for key, value in one["state"].items():
        torch.testing.assert_close(two["state"][key], value, rtol=1e-4, atol=1e-6, msg=key)
        moved += int(not torch.equal(value, initial[key]))
    assert moved > 0
    # the epoch's metrics are over all 128 images, not one rank's 64
    for field in ("train_loss", "train_accuracy", "test_accuracy"):
        assert two["history"][0][field] == pytest.approx(one["history"][0][field], rel=1e-4)


def test_torchrun_train_ann_writes_exactly_one_checkpoint(tmp_path):
    out = tmp_path / "runs" / "digits.ann.pt"
    result = _torchrun(
        "-m", "dietsnn_deploy.cli", "train-ann", "--dataset", "digits", "--ann-epochs", "2",
        "--train-limit", "256", "--test-limit", "64", "--threads", "1", "--device", "cpu",
        "-o", str(out),
    )  # fmt: skip
    files = sorted(p.name for p in out.parent.iterdir())
    assert files == ["digits.ann.epochs.csv", "digits.ann.pt"] or files == [
        "digits.ann.epochs.csv", "digits.ann.pt", "digits.ann.tensorboard",
    ]  # fmt: skip
    assert result.stdout.count("ANN accuracy") == 1  # rank 0 alone reports
    from dietsnn_deploy.training.checkpoints import load_checkpoint

    _, info = load_checkpoint(out)
    assert [h["epoch"] for h in info.history] == [1, 2]
