"""The ``export`` and ``simulate`` commands on a converted vgg-tiny digits checkpoint: what they
write and print, and one ``error:`` line with exit status 2 for malformed input. In-process
through ``cli.main`` (as the script runs it) except one run of the installed script."""

import copy
import json
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from cli_helpers import assert_one_error_line, run_main
from fixtures_nets import assert_same_network, converted_digits

import exporters.netx.writer
from dietsnn_deploy.data import dataset_info, make_loader
from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.loihi import A_IN_MAX
from dietsnn_deploy.training.checkpoints import ModelInfo, save_checkpoint
from dietsnn_deploy.training.pipeline import calibration_images
from dietsnn_deploy.training.quantize import quantize
from exporters.netx import read_netx
from hw_sim.emulator import classify

SCRIPT = Path(sys.executable).with_name("dietsnn-deploy")


def _info(stage: str) -> ModelInfo:
    data = dataset_info("digits")
    return ModelInfo(
        arch="vgg-tiny",
        dataset="digits",
        in_shape=data.in_shape,
        num_classes=data.num_classes,
        mean=data.mean,
        std=data.std,
        stage=stage,
    )


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """A converted vgg-tiny SNN (thresholds balanced on digits, untrained weights: fast) and
    the same weights saved as an ANN checkpoint."""
    folder = tmp_path_factory.mktemp("cli_deploy")
    model, info = converted_digits()
    model.set_neuron_params(leaks=[0.95, 0.9, 0.85])
    save_checkpoint(model, info, folder / "snn.pt")
    save_checkpoint(model, _info("ann"), folder / "ann.pt")
    return folder / "snn.pt", folder / "ann.pt", model, info


@pytest.fixture(scope="module")
def exported(checkpoints, tmp_path_factory):
    """One run of the installed script: ``export`` of the SNN checkpoint."""
    snn, *_ = checkpoints
    out = tmp_path_factory.mktemp("export") / "snn.net"
    result = subprocess.run(
        [str(SCRIPT), "export", str(snn), "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return out, result.stdout


def _raw_test_images(count: int):
    loader = make_loader("digits", "test", count, limit=count, normalization=((0.0,), (1.0,)))
    return next(iter(loader))


def test_export_writes_the_quantized_network(checkpoints, exported):
    _, _, model, info = checkpoints
    out, stdout = exported
    expected = quantize(
        model,
        calibration_images(info, None, 512),
        timesteps=info.timesteps,
        mean=info.mean,
        std=info.std,
        dataset="digits",
    )
    assert_same_network(read_netx(out), expected)
    lines = stdout.strip().splitlines()
    assert lines[0].split()[:2] == ["layer", "scale"]
    rows = lines[1 : 1 + len(expected.quantization)]
    for q, line in zip(expected.quantization, rows, strict=True):
        assert line.startswith(q.name)
        assert f"{q.threshold:>9d}{q.v_decay:>8d}" in line
    assert lines[-1] == f"wrote {out}: input → conv → flatten → dense → dense, T=5"


def test_export_flags_inputs_beyond_int16(checkpoints, monkeypatch, capsys, tmp_path):
    """A hidden layer whose 1024 folded inputs are all excitatory can receive ≫ 2^15 in one
    step: its row shows the bound and a flag, and a warning line names it."""
    _, _, model, info = checkpoints
    excitatory = copy.deepcopy(model)
    with torch.no_grad():
        weight = excitatory.classifier[0].weight
        weight.copy_(weight.abs())
    save_checkpoint(excitatory, info, tmp_path / "exc.pt")
    code, out, _ = run_main(monkeypatch, capsys, "export", str(tmp_path / "exc.pt"))
    assert code == 0
    net = read_netx(tmp_path / "exc.net")
    lines = out.strip().splitlines()
    assert "max |in|" in lines[0]
    for q, line in zip(net.quantization, lines[1:], strict=False):
        assert str(q.input_bound) in line.split()
        assert line.endswith("> int16") == q.exceeds_int16
    flagged = [q.name for q in net.quantization if q.input_bound > A_IN_MAX]
    assert "t6" in flagged and "readout" not in flagged
    assert any(line.startswith(f"warning: {', '.join(flagged)}: ") for line in lines)


def test_export_defaults_to_checkpoint_name(checkpoints, monkeypatch, capsys, tmp_path):
    snn, *_ = checkpoints
    source = tmp_path / "model.pt"
    shutil.copy(snn, source)
    code, out, _ = run_main(monkeypatch, capsys, "export", str(source))
    assert code == 0
    assert (tmp_path / "model.net").is_file() and f"wrote {tmp_path / 'model.net'}" in out


def _simulate_json(monkeypatch, capsys, network: Path, count: int) -> dict:
    code, out, err = run_main(
        monkeypatch, capsys, "simulate", str(network), "-n", str(count), "--json"
    )
    assert code == 0, err
    return json.loads(out)


def test_simulate_json_on_emulator(exported, monkeypatch, capsys):
    out, _ = exported
    report = _simulate_json(monkeypatch, capsys, out, 40)
    pixels, labels = _raw_test_images(40)
    result = classify(read_netx(out), pixels, progress=False)
    assert report["backend"] == "emulator" and report["images"] == 40
    assert report["predictions"] == result.predictions.tolist()  # one per image, in order
    expected_accuracy = float((result.predictions == labels).double().mean())
    assert report["accuracy"] == pytest.approx(expected_accuracy)
    assert report["spike_counts"] == {
        "0:input": result.spike_counts[0],
        "1:conv": result.spike_counts[1],
        "3:dense": result.spike_counts[3],
    }
    assert all(count > 0 for count in report["spike_counts"].values())


def test_simulate_checkpoint_equals_its_export(checkpoints, exported, monkeypatch, capsys):
    snn, *_ = checkpoints
    out, _ = exported
    from_checkpoint = _simulate_json(monkeypatch, capsys, snn, 30)
    from_netx = _simulate_json(monkeypatch, capsys, out, 30)
    for key in ("predictions", "accuracy", "spike_counts"):
        assert from_checkpoint[key] == from_netx[key]


def test_simulate_prints_summary(exported, monkeypatch, capsys):
    out, _ = exported
    code, stdout, _ = run_main(monkeypatch, capsys, "simulate", str(out), "-n", "10")
    assert code == 0
    lines = stdout.strip().splitlines()
    assert lines[0].startswith("emulator: accuracy ") and "on 10 digits test images" in lines[0]
    assert [line.split(":")[0].strip() for line in lines[1:]] == ["0", "1", "3"]


# --- malformed input: exit 2, one error line ------------------------------------------------


def _corrupt(path: Path, folder: Path, how: str) -> Path:
    target = folder / f"{how}.net"
    if how == "garbage":
        target.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\x00not hdf5" * 50)
    elif how == "truncated":
        data = path.read_bytes()
        target.write_bytes(data[: len(data) // 2])
    elif how == "missing-weight":
        shutil.copy(path, target)
        with h5py.File(target, "r+") as f:
            del f["layer/1/weight"]
    return target


@pytest.mark.parametrize(
    ("how", "message"),
    [
        ("garbage", "not a readable HDF5 file"),
        ("truncated", "truncated file"),
        ("missing-weight", "layer 1 (conv): missing field 'weight'"),
    ],
)
def test_simulate_refuses_broken_netx(exported, tmp_path, monkeypatch, capsys, how, message):
    out, _ = exported
    broken = _corrupt(out, tmp_path, how)
    code, stdout, err = run_main(monkeypatch, capsys, "simulate", str(broken), "-n", "5")
    assert code == 2 and stdout == ""
    assert_one_error_line(err, message)


def test_missing_files(monkeypatch, capsys, tmp_path):
    for command in ("simulate", "export"):
        code, _, err = run_main(monkeypatch, capsys, command, str(tmp_path / "absent.net"))
        assert code == 2
        assert_one_error_line(err, "not found")


def test_simulate_refuses_wrong_dataset(exported, monkeypatch, capsys):
    out, _ = exported
    code, _, err = run_main(monkeypatch, capsys, "simulate", str(out), "--dataset", "fashion-mnist")
    assert code == 2
    assert_one_error_line(err, "trained on digits, not fashion-mnist")


def test_export_refuses_ann_checkpoint(checkpoints, monkeypatch, capsys, tmp_path):
    _, ann, *_ = checkpoints
    code, _, err = run_main(monkeypatch, capsys, "export", str(ann), "-o", str(tmp_path / "a.net"))
    assert code == 2
    assert_one_error_line(err, "ANN checkpoint")
    assert list(tmp_path.iterdir()) == []


def _fail_mid_write(monkeypatch, exc: BaseException) -> None:
    """Make the writer raise after the layers are in the file, before the metadata."""

    def fail(*args, **kwargs):
        raise exc

    monkeypatch.setattr(exporters.netx.writer, "write_metadata", fail)


@pytest.mark.parametrize(
    ("exc", "code", "message"),
    [
        (DeployError("simulated failure while writing"), 2, "simulated failure while writing"),
        (KeyboardInterrupt(), 130, "interrupted"),
    ],
)
def test_interrupted_export_leaves_no_file(
    checkpoints, tmp_path, monkeypatch, capsys, exc, code, message
):
    snn, *_ = checkpoints
    target = tmp_path / "out.net"
    _fail_mid_write(monkeypatch, exc)
    status, _, err = run_main(monkeypatch, capsys, "export", str(snn), "-o", str(target))
    assert status == code
    assert_one_error_line(err, message)
    assert list(tmp_path.iterdir()) == []  # neither the file nor its temp file


def test_interrupted_export_keeps_the_previous_file(exported, checkpoints, monkeypatch, capsys):
    out, _ = exported
    snn, *_ = checkpoints
    before = out.read_bytes()
    _fail_mid_write(monkeypatch, KeyboardInterrupt())
    status, _, _ = run_main(monkeypatch, capsys, "export", str(snn), "-o", str(out))
    assert status == 130
    assert out.read_bytes() == before
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]


def test_export_disk_full_is_one_error_line(checkpoints, tmp_path, monkeypatch, capsys):
    snn, *_ = checkpoints
    _fail_mid_write(monkeypatch, OSError(28, "No space left on device"))
    try:
        status, _, err = run_main(
            monkeypatch, capsys, "export", str(snn), "-o", str(tmp_path / "x")
        )
    except OSError:
        status, err = 1, "Traceback"
    assert list(tmp_path.iterdir()) == []
    assert status == 2
    assert_one_error_line(err, "No space left on device")


def test_export_of_an_official_checkpoint_equals_ours(checkpoints, monkeypatch, capsys, tmp_path):
    """The official DIET-SNN format (module.-prefixed state_dict, threshold/leak lists) exports,
    given --arch and --dataset, to the same integers as our checkpoint of the same weights."""
    snn, _, model, _ = checkpoints
    official = tmp_path / "official.pth"
    torch.save(
        {
            "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()},
            "thresholds": model.thresholds(),
            "leak": model.leaks(),
            "timesteps": 5,
            "accuracy": 0.5,
            "epoch": 1,
        },
        official,
    )
    ours, theirs = tmp_path / "ours.net", tmp_path / "theirs.net"
    assert run_main(monkeypatch, capsys, "export", str(snn), "-o", str(ours))[0] == 0
    code, _, err = run_main(
        monkeypatch,
        capsys,
        "export",
        str(official),
        "-o",
        str(theirs),
        "--arch",
        "vgg-tiny",
        "--dataset",
        "digits",
    )
    assert code == 0, err
    mine, other = read_netx(ours), read_netx(theirs)
    assert [layer.kind for layer in other.layers] == [layer.kind for layer in mine.layers]
    for a, b in zip(mine.layers, other.layers, strict=True):
        if hasattr(a, "weight"):
            assert np.array_equal(a.weight, b.weight)
        if hasattr(a, "neuron"):
            assert a.neuron == b.neuron
    code, _, err = run_main(monkeypatch, capsys, "export", str(official), "-o", str(theirs))
    assert code == 2
    assert_one_error_line(err, "--arch and --dataset")
