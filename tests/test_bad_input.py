"""Every class of bad input ends with one ``error:`` line and exit 2, before any work, and
never destroys an input: outputs onto inputs, damaged metadata, empty datasets, out-of-range
fields, options a command would ignore, too many timesteps, checksums, long names."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from cli_helpers import assert_one_error_line, run_main
from fixtures_nets import converted_digits, random_network

from dietsnn_deploy.atomic import atomic_path
from dietsnn_deploy.data import dataset_info
from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.interrupts import Terminated
from dietsnn_deploy.training.checkpoint_schema import payload_digest
from dietsnn_deploy.training.checkpoints import ModelInfo, save_checkpoint
from dietsnn_deploy.training.models import build_model
from exporters.netx import read_netx, write_netx


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    """A converted digits checkpoint, its ANN twin and its netx export."""
    folder = tmp_path_factory.mktemp("bad_input")
    model, info = converted_digits()
    save_checkpoint(model, info, folder / "snn.pt")
    save_checkpoint(model, replace(info, stage="ann"), folder / "ann.pt")
    return folder


def _fingerprint(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def _copy(files: Path, tmp_path: Path, name: str) -> Path:
    target = tmp_path / name
    target.write_bytes((files / name).read_bytes())
    return target


# --- 1. no output may be an input ---------------------------------------------------------


def _refuses_onto_input(monkeypatch, capsys, tmp_path, args, expected="is the input"):
    before = _fingerprint(tmp_path)
    code, _, err = run_main(monkeypatch, capsys, *args)
    assert code == 2
    assert_one_error_line(err, expected)
    assert _fingerprint(tmp_path) == before  # nothing written, nothing destroyed


@pytest.mark.parametrize("alias", ["same", "symlink", "hardlink"])
def test_export_refuses_to_write_onto_its_checkpoint(files, tmp_path, monkeypatch, capsys, alias):
    source = _copy(files, tmp_path, "snn.pt")
    target = {"same": source, "symlink": tmp_path / "link.net", "hardlink": tmp_path / "hard.net"}
    if alias == "symlink":
        target["symlink"].symlink_to(source)
    if alias == "hardlink":
        os.link(source, target["hardlink"])
    _refuses_onto_input(
        monkeypatch, capsys, tmp_path, ["export", str(source), "-o", str(target[alias])]
    )


def test_export_of_a_netx_file_onto_itself(files, tmp_path, monkeypatch, capsys):
    net = tmp_path / "model.net"
    write_netx(random_network("dense", 1), net)
    _refuses_onto_input(monkeypatch, capsys, tmp_path, ["export", str(net)])  # default -o


@pytest.mark.parametrize(
    "command, source", [("convert", "ann.pt"), ("train-snn", "snn.pt"), ("finetune", "snn.pt")]
)
def test_stage_commands_refuse_to_overwrite_their_input(
    files, tmp_path, monkeypatch, capsys, command, source
):
    path = _copy(files, tmp_path, source)
    _refuses_onto_input(monkeypatch, capsys, tmp_path, [command, str(path), "-o", str(path)])


def test_energy_outputs_may_not_be_the_network_or_each_other(files, tmp_path, monkeypatch, capsys):
    net = tmp_path / "model.net"
    write_netx(random_network("dense", 1), net)
    _refuses_onto_input(monkeypatch, capsys, tmp_path, ["energy", str(net), "--json", str(net)])
    _refuses_onto_input(monkeypatch, capsys, tmp_path, ["energy", str(net), "--csv", str(net)])
    same = str(tmp_path / "report")
    _refuses_onto_input(
        monkeypatch, capsys, tmp_path, ["energy", str(net), "--json", same, "--csv", same],
        expected="are the same file",
    )  # fmt: skip


# --- 2. signals: a write interrupted by SIGTERM leaves nothing behind ----------------------


def test_termination_during_an_atomic_write_leaves_no_temp_file(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"previous")
    with pytest.raises(Terminated), atomic_path(target) as tmp:
        tmp.write_bytes(b"half")
        raise Terminated(15)
    assert [p.name for p in tmp_path.iterdir()] == ["out.bin"]
    assert target.read_bytes() == b"previous"


def test_a_killed_writers_temp_file_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "out.bin"
    orphan = tmp_path / ".out.bin.999999999.abc.tmp"  # no process has that pid
    orphan.write_bytes(b"left by a SIGKILL")
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.bin"]


def test_write_errors_name_the_target_not_the_temp_file(tmp_path):
    target = tmp_path / "out.bin"
    with pytest.raises(DeployError) as caught, atomic_path(target) as tmp:
        raise OSError(28, "No space left on device", str(tmp))
    message = str(caught.value)
    assert str(target) in message and ".tmp" not in message and "No space left" in message


# --- 3./4./5. netx metadata read against its meaning ---------------------------------------


def _damaged_netx(tmp_path, action) -> Path:
    path = tmp_path / "net.net"
    write_netx(random_network("pooled", 4), path)
    with h5py.File(path, "a") as f:
        action(f)
    return path


def _set_attr(where: str, name: str, value):
    def action(f):
        f[where].attrs[name] = value

    return action


def _replace(name: str, value):
    def action(f):
        del f[name]
        f[name] = value

    return action


@pytest.mark.parametrize(
    "action, message",
    [
        (_set_attr("dietsnn", "timesteps", "five"), "timesteps"),
        (_set_attr("dietsnn", "timesteps", np.nan), "timesteps"),
        (_set_attr("dietsnn", "timesteps", 2.5), "timesteps"),
        (_set_attr("dietsnn", "timesteps", 10**9), "timesteps must be between 1 and 4096"),
        (_set_attr("dietsnn", "num_classes", "ten"), "num_classes"),
        (_set_attr("dietsnn", "format_version", np.inf), "format_version"),
        (_set_attr("dietsnn", "format_version", 7), "format_version 7"),
        (_set_attr("dietsnn/encoder", "drive_scale", "big"), "drive_scale"),
        (_set_attr("dietsnn/encoder", "drive_scale", np.nan), "drive_scale"),
        (_set_attr("dietsnn/encoder", "encoding", "morse"), "unknown input encoding 'morse'"),
        (_replace("dietsnn/encoder/mean", np.array([b"0.5", b"0.5"])), "mean"),
        (_replace("dietsnn/encoder/std", np.array([0.3, np.nan])), "std"),
        (_replace("dietsnn/encoder/std", np.array([0.3, -0.2])), "std"),
        (_replace("dietsnn/encoder/std", np.array([0.3, 0.0])), "std"),
        (_replace("dietsnn/encoder/mean", np.array([0.3, 1e12])), "mean"),
        (_set_attr("dietsnn", "dataset", "x" * 5000), "not a short printable name"),
    ],
)
def test_netx_metadata_is_checked_against_its_meaning(tmp_path, action, message):
    with pytest.raises(DeployError, match=message) as caught:
        read_netx(_damaged_netx(tmp_path, action))
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 300


@pytest.mark.parametrize(
    "action",
    [
        lambda f: f["layer/1/weight"].__setitem__(
            (0, 0, 0, 0), f["layer/1/weight"][0, 0, 0, 0] + 2
        ),
        lambda f: f["layer/4/neuron/vThMant"][()] and _replace("layer/4/neuron/vThMant", 7)(f),
        lambda f: _replace("dietsnn/encoder/weight", f["dietsnn/encoder/weight"][()] * 1.001)(f),
        lambda f: _replace("dietsnn/layer_pool", np.array([1, 1, 1, 1, 1]))(f),
    ],
    ids=["weight", "threshold", "encoder", "pool"],
)
def test_a_changed_network_fails_its_checksum(tmp_path, action):
    with pytest.raises(DeployError, match="checksum mismatch|pool|layer"):
        read_netx(_damaged_netx(tmp_path, action))


def test_files_without_our_metadata_carry_no_checksum_and_stay_readable(tmp_path):
    from exporters.netx import read_netx_layers

    path = _damaged_netx(tmp_path, lambda f: f.__delitem__("dietsnn"))
    assert [layer.kind for layer in read_netx_layers(path)][0] == "input"


def test_not_hdf5_says_so(tmp_path, monkeypatch, capsys):
    path = tmp_path / "model.net"
    path.write_text("hello, I am a text file")
    code, _, err = run_main(monkeypatch, capsys, "simulate", str(path), "-n", "1")
    assert code == 2
    assert_one_error_line(err, "not an HDF5 file, so not a netx network")


# --- checkpoints ---------------------------------------------------------------------------


def _rewritten(files, tmp_path, change) -> Path:
    """The checkpoint changed and signed again (as a tool that rewrites it would): the field
    checks, not the checksum, must catch the change."""
    payload = torch.load(files / "snn.pt", weights_only=True)
    change(payload)
    payload["digest"] = payload_digest(payload)
    path = tmp_path / "changed.pt"
    torch.save(payload, path)
    return path


@pytest.mark.parametrize(
    "change, message",
    [
        (lambda p: p.__setitem__("dropout", 1.5), "'dropout' must be a number in"),
        (lambda p: p.__setitem__("dropout", -0.1), "'dropout' must be a number in"),
        (lambda p: p.__setitem__("history", "lots"), "'history' must be a list"),
        (lambda p: p.__setitem__("history", [{"epoch": 1}]), "history\\[0\\]"),
        (lambda p: p.__setitem__("history", [{"stage": "ann", "epoch": 0}]), "history\\[0\\]"),
        (lambda p: p.__setitem__("timesteps", 2.5), "timesteps must be a whole number"),
        (lambda p: p.__setitem__("timesteps", 10**9), "timesteps must be between"),
        (lambda p: p.__setitem__("encoding", "morse"), "unknown encoding 'morse'"),
        (lambda p: p.__setitem__("reset", "sideways"), "unknown reset 'sideways'"),
        (lambda p: p.__setitem__("std", [0.0]), "'std' must be positive"),
        (lambda p: p.__setitem__("std", [float("inf")]), "'std' holds inf"),
        (lambda p: p.__setitem__("mean", [float("nan")]), "'mean' holds nan"),
        (lambda p: p.__setitem__("mean", [1e30]), "'mean' holds"),
        (lambda p: p.__setitem__("accuracy", 3.0), "'accuracy' must be a number in"),
        (lambda p: p.__setitem__("dataset", "q" * 5000), "unknown dataset"),
        (lambda p: p.__setitem__("num_classes", 7), "does not fit digits|expects \\(7, 128\\)"),
        (lambda p: p["state_dict"]["threshold.t3"].fill_(-1.0), "thresholds must be > 0"),
        (lambda p: p["state_dict"]["threshold.t3"].fill_(0.0), "thresholds must be > 0"),
        (lambda p: p["state_dict"]["leak.l6"].fill_(1.5), "leaks must be in \\[0, 1\\]"),
    ],
)
def test_checkpoint_fields_are_checked_against_their_meaning(
    files, tmp_path, monkeypatch, capsys, change, message
):
    path = _rewritten(files, tmp_path, change)
    code, _, err = run_main(monkeypatch, capsys, "evaluate", str(path), "-n", "4")
    assert code == 2
    assert_one_error_line(err, "")
    assert len(err) < 260
    assert re.search(message, err), err


def test_a_changed_checkpoint_fails_its_checksum_and_version_1_files_still_load(files, tmp_path):
    from dietsnn_deploy.training.checkpoints import load_checkpoint

    payload = torch.load(files / "snn.pt", weights_only=True)
    payload["state_dict"]["features.3.weight"].view(-1)[7] += 1e-6  # one weight, slightly
    torch.save(payload, tmp_path / "edited.pt")
    with pytest.raises(DeployError, match="checksum mismatch"):
        load_checkpoint(tmp_path / "edited.pt")
    original = torch.load(files / "snn.pt", weights_only=True)
    del original["digest"]
    original["format"] = "dietsnn-deploy/1"  # written before checkpoints were signed
    torch.save(original, tmp_path / "v1.pt")
    model, _ = load_checkpoint(tmp_path / "v1.pt")
    assert torch.equal(model.features[3].weight, original["state_dict"]["features.3.weight"])


def test_unsafe_checkpoint_is_refused_in_our_words(tmp_path, monkeypatch, capsys):
    torch.save({"state_dict": {}, "hook": Path("/")}, tmp_path / "x.pt")
    code, _, err = run_main(monkeypatch, capsys, "evaluate", str(tmp_path / "x.pt"))
    assert code == 2
    assert_one_error_line(err, "refused: loading it would run code")
    assert "WeightsUnpickler" not in err and "weights_only" not in err


# --- options a command would otherwise ignore ---------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["convert", "{ann}", "--arch", "vgg999"], "unknown architecture 'vgg999'"),
        (["train-snn", "{snn}", "--arch", "vgg999"], "unknown architecture 'vgg999'"),
        (["finetune", "{snn}", "--arch", "vgg999"], "unknown architecture 'vgg999'"),
        (["convert", "{ann}", "--arch", "vgg5"], "--arch vgg5 does not apply"),
        (["finetune", "{snn}", "--dataset", "mnist"], "--dataset mnist does not apply"),
        (["train-snn", "{snn}", "--dataset", "cifar10"], "--dataset cifar10 does not apply"),
        (["train", "-T", "100000"], "between 1 and 4096"),
    ],
)
def test_options_that_do_not_apply_are_refused(files, tmp_path, monkeypatch, capsys, args, message):
    names = {"ann": files / "ann.pt", "snn": files / "snn.pt"}
    args = [a.format(**names) for a in args] + ["-o", str(tmp_path / "out.pt")]
    code, _, err = run_main(monkeypatch, capsys, *args)
    assert code == 2
    assert_one_error_line(err, message)
    assert not (tmp_path / "out.pt").exists()


def test_a_run_too_large_for_memory_is_refused_with_the_figure(files, monkeypatch, capsys):
    code, _, err = run_main(
        monkeypatch, capsys, "evaluate", str(files / "snn.pt"), "-T", "4096", "--batch-size", "360"
    )  # fmt: skip
    assert code == 2
    assert_one_error_line(err, "GiB of memory")


# --- datasets with a valid header and no images -------------------------------------------


def _write_idx(folder: Path, count: int) -> None:
    import struct

    folder.mkdir(parents=True, exist_ok=True)
    for prefix in ("train", "t10k"):
        images = struct.pack(">IIII", 0x803, count, 28, 28) + bytes(count * 784)
        labels = struct.pack(">II", 0x801, count) + bytes(count)
        (folder / f"{prefix}-images-idx3-ubyte").write_bytes(images)
        (folder / f"{prefix}-labels-idx1-ubyte").write_bytes(labels)


@pytest.mark.parametrize(
    "command", [["train-ann"], ["export", "{ckpt}"], ["simulate", "{ckpt}"], ["energy", "{ckpt}"]]
)
def test_an_empty_dataset_is_refused(tmp_path, monkeypatch, capsys, command):
    empty = tmp_path / "empty"
    _write_idx(empty, 0)
    data = dataset_info("fashion-mnist")
    info = ModelInfo("vgg-tiny", "fashion-mnist", data.in_shape, 10, data.mean, data.std, "snn")
    save_checkpoint(build_model("vgg-tiny", data.in_shape, 10), info, tmp_path / "fm.pt")
    args = [a.format(ckpt=tmp_path / "fm.pt") for a in command]
    if command[0] == "train-ann":
        args += ["--dataset", "fashion-mnist", "-o", str(tmp_path / "a.pt")]
    code, _, err = run_main(monkeypatch, capsys, *args, "--data-dir", str(empty))
    assert code == 2
    assert_one_error_line(err, "holds no images")


@pytest.mark.parametrize("damage", [RuntimeError, KeyError, ValueError, OSError])
def test_hdf5_too_damaged_to_list_is_one_error_line(files, tmp_path, monkeypatch, capsys, damage):
    """Found by the fuzzer: a bit flip in a B-tree makes h5py raise RuntimeError while telling
    a netx file from a NIR graph (not only OSError)."""
    import exporters.hdf5

    net = tmp_path / "snn.net"
    write_netx(random_network("conv", 3, timesteps=2), net)
    real = h5py.File

    def damaged(path, *args, **kwargs):
        if Path(path) == net:
            raise damage("Unable to synchronously check link existence (wrong B-tree signature)")
        return real(path, *args, **kwargs)

    monkeypatch.setattr(h5py, "File", damaged)
    assert exporters.hdf5.top_groups(net) is None
    code, _, err = run_main(monkeypatch, capsys, "simulate", str(net), "-n", "2")
    assert code == 2
    assert_one_error_line(err, str(net))
