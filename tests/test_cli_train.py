"""The ``train`` and ``evaluate`` commands end to end on digits: a few runs of the installed
``dietsnn-deploy`` script (exit codes, one-line errors without traceback), the rest in-process
through ``cli.main`` for speed."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from cli_helpers import assert_one_error_line, run_main

from dietsnn_deploy.data import make_loader
from dietsnn_deploy.spine.settings import RunSettings
from dietsnn_deploy.training.checkpoints import load_checkpoint
from dietsnn_deploy.training.loop import evaluate

SCRIPT = Path(sys.executable).with_name("dietsnn-deploy")


def _tiny(ann_epochs: int = 2, snn_epochs: int = 1) -> list[str]:
    """``train`` options for a run of a few seconds on digits."""
    return [
        "--dataset", "digits", "--arch", "vgg-tiny", "--ann-epochs", str(ann_epochs),
        "--snn-epochs", str(snn_epochs), "--train-limit", "192", "--test-limit", "100",
        "--batch-size", "32", "--snn-batch-size", "32", "--ann-lr", "3e-3", "--threads", "1",
    ]  # fmt: skip


SUMMARY = re.compile(
    r"vgg-tiny on digits, T=5: ANN (\d+\.\d\d)%, converted (\d+\.\d\d)%, DIET-SNN (\d+\.\d\d)%"
)


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(SCRIPT), *args], capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """One real ``train`` run (≈ 5 s): the output folder and the completed process."""
    out = tmp_path_factory.mktemp("train") / "digits.pt"
    result = _run("train", *_tiny(), "-o", str(out))
    assert result.returncode == 0, result.stderr[-2000:]
    return out, result


def _stage_files(out: Path) -> dict[str, Path]:
    return {
        "ann": out.with_name("digits.ann.pt"),
        "converted": out.with_name("digits.converted.pt"),
        "snn": out,
    }


def _fingerprint(paths) -> dict[str, tuple[int, bytes]]:
    return {k: (p.stat().st_mtime_ns, p.read_bytes()) for k, p in paths.items()}


def test_train_writes_three_stage_checkpoints_and_prints_accuracies(trained_run):
    out, result = trained_run
    match = SUMMARY.search(result.stdout)
    assert match, result.stdout
    ann, converted, diet = (float(v) / 100 for v in match.groups())
    infos = {}
    for stage, path in _stage_files(out).items():
        assert path.is_file()
        infos[stage] = load_checkpoint(path)[1]
        assert infos[stage].stage == stage
    assert f"{out.with_name('digits.ann.pt')}" in result.stdout
    assert infos["ann"].ann_accuracy == pytest.approx(ann, abs=5e-5)
    assert infos["converted"].converted_accuracy == pytest.approx(converted, abs=5e-5)
    assert infos["snn"].accuracy == pytest.approx(diet, abs=5e-5)
    assert [h["stage"] for h in infos["snn"].history] == ["ann", "ann", "diet"]
    assert len(infos["converted"].initial_thresholds) == 3
    assert infos["converted"].initial_leaks == [1.0, 1.0, 1.0]


def test_rerun_resumes_without_retraining(trained_run, monkeypatch, capsys):
    out, first = trained_run
    before = _fingerprint(_stage_files(out))
    code, stdout, _ = run_main(monkeypatch, capsys, "train", *_tiny(), "-o", str(out))
    assert code == 0
    assert SUMMARY.search(stdout).group(0) == SUMMARY.search(first.stdout).group(0)
    assert _fingerprint(_stage_files(out)) == before  # nothing rewritten


def test_more_snn_epochs_continue_only_the_last_stage(trained_run, monkeypatch, capsys, tmp_path):
    out = tmp_path / "digits.pt"
    for stage, path in _stage_files(trained_run[0]).items():
        _stage_files(out)[stage].write_bytes(path.read_bytes())
    before = _fingerprint(_stage_files(out))
    code, _, _ = run_main(monkeypatch, capsys, "train", *_tiny(snn_epochs=2), "-o", str(out))
    assert code == 0
    after = _fingerprint(_stage_files(out))
    assert after["ann"] == before["ann"] and after["converted"] == before["converted"]
    assert after["snn"] != before["snn"]
    history = load_checkpoint(out)[1].history
    assert [(h["stage"], h["epoch"]) for h in history] == [
        ("ann", 1), ("ann", 2), ("diet", 1), ("diet", 2)
    ]  # fmt: skip


def test_evaluate_json_prints_one_object(trained_run):
    out, _ = trained_run
    result = _run("evaluate", str(out), "--json", "-n", "60")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1
    report = json.loads(lines[0])
    assert report["stage"] == "snn" and report["timesteps"] == 5 and report["images"] == 60
    assert 0.0 <= report["accuracy"] <= 1.0
    assert list(report["spike_rates"]) == ["0", "3", "6"]
    assert all(0.0 < rate <= 5 for rate in report["spike_rates"].values())
    # the same figures as evaluating in-process
    torch.set_num_threads(1)
    model, info = load_checkpoint(out)
    loader = make_loader("digits", "test", 256, limit=60, normalization=(info.mean, info.std))
    expected = evaluate(model, loader, RunSettings(info.timesteps))
    assert report["accuracy"] == pytest.approx(expected.accuracy)
    assert report["spike_rates"] == pytest.approx(expected.spike_rates)


def test_evaluate_ann_checkpoint_text_output(trained_run, monkeypatch, capsys):
    ann = _stage_files(trained_run[0])["ann"]
    code, stdout, _ = run_main(monkeypatch, capsys, "evaluate", str(ann), "-n", "50")
    assert code == 0
    assert re.fullmatch(r"vgg-tiny on digits \(ANN\): accuracy \d+\.\d\d%\n", stdout)


def test_corrupt_checkpoint_exits_2_with_one_line(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\x80\x02not really a checkpoint" * 20)
    result = _run("evaluate", str(bad))
    assert result.returncode == 2
    assert_one_error_line(result.stderr, "not a readable checkpoint")
    assert result.stdout == ""


def test_unknown_architecture_exits_2_with_one_line(tmp_path):
    result = _run("train", "--arch", "vgg7", "--threads", "1", "-o", str(tmp_path / "x.pt"))
    assert result.returncode == 2
    assert_one_error_line(result.stderr, "unknown architecture 'vgg7'")
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    "args, expected",
    [
        (["train", "--dataset", "svhn", "-o", "{tmp}/x.pt"], "unknown dataset 'svhn'"),
        (["train-ann", "--arch", "alexnet", "-o", "{tmp}/x.pt"], "unknown architecture"),
        (["evaluate", "{tmp}/missing.pt"], "checkpoint not found"),
        (["convert", "{tmp}/missing.pt", "-o", "{tmp}/c.pt"], "checkpoint not found"),
        (["train-snn", "{tmp}/missing.pt", "-o", "{tmp}/s.pt"], "checkpoint not found"),
        (["train", "--neuron-lr", "nan", "-o", "{tmp}/x.pt"], "--neuron-lr must be a finite"),
        (["train", "--snn-lr", "inf", "-o", "{tmp}/x.pt"], "--snn-lr must be a finite"),
        (["finetune", "{tmp}/x.pt", "--ann-lr", "-1", "-o", "{tmp}/h.pt"], "--ann-lr must be"),
    ],
)
def test_bad_input_exits_2_with_one_line(monkeypatch, capsys, tmp_path, args, expected):
    args = [a.format(tmp=tmp_path) for a in args]
    code, stdout, err = run_main(monkeypatch, capsys, *args)
    assert code == 2
    assert_one_error_line(err, expected)


def test_stage_commands_refuse_the_wrong_stage(trained_run, monkeypatch, capsys, tmp_path):
    files = _stage_files(trained_run[0])
    code, _, err = run_main(
        monkeypatch, capsys, "convert", str(files["snn"]), "-o", str(tmp_path / "c.pt")
    )
    assert code == 2
    assert_one_error_line(err, "convert needs an ANN checkpoint, not 'snn'")
    code, _, err = run_main(
        monkeypatch, capsys, "train-snn", str(files["ann"]), "-o", str(tmp_path / "s.pt")
    )
    assert code == 2
    assert_one_error_line(err, "train-snn needs a converted checkpoint, not 'ann'")


def test_zero_snn_epochs_still_writes_the_final_checkpoint(
    trained_run, monkeypatch, capsys, tmp_path
):
    out = tmp_path / "digits.pt"
    for stage in ("ann", "converted"):
        _stage_files(out)[stage].write_bytes(_stage_files(trained_run[0])[stage].read_bytes())
    # --snn-epochs 0: the converted SNN is the result
    code, stdout, _ = run_main(monkeypatch, capsys, "train", *_tiny(snn_epochs=0), "-o", str(out))
    assert code == 0 and out.is_file()
    info = load_checkpoint(out)[1]
    assert info.stage == "snn" and info.accuracy == info.converted_accuracy
    assert str(out) in stdout


def test_zero_ann_epochs_without_a_checkpoint_is_an_error(monkeypatch, capsys, tmp_path):
    out = str(tmp_path / "d.pt")
    code, _, err = run_main(monkeypatch, capsys, "train", *_tiny(ann_epochs=0), "-o", out)
    assert code == 2
    assert_one_error_line(err, "no ANN checkpoint to resume and ann_epochs is 0")
