"""Checkpoints: our format's round trip, the official DIET-SNN format (checked against a plain
re-implementation of the official forward pass), and every kind of bad file → DeployError."""

import argparse
import dataclasses

import pytest
import torch
from torch import nn

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.spine.encodings import get_encoding
from dietsnn_deploy.spine.neurons import get_neuron_model
from dietsnn_deploy.training.checkpoint_schema import payload_digest
from dietsnn_deploy.training.checkpoints import FORMAT, ModelInfo, load_checkpoint, save_checkpoint
from dietsnn_deploy.training.models import build_model


def _model_and_info(stage: str = "snn"):
    torch.manual_seed(0)
    model = build_model("vgg-tiny", (1, 8, 8), 10, dropout=0.1)
    model.set_neuron_params(thresholds=[0.7, 1.3, 0.45], leaks=[0.9, 0.8, 0.65])
    info = ModelInfo(
        arch="vgg-tiny",
        dataset="digits",
        in_shape=(1, 8, 8),
        num_classes=10,
        mean=(0.3054,),
        std=(0.3761,),
        stage=stage,
        timesteps=7,
        encoding="poisson",
        reset="hard",
        dropout=0.1,
        ann_accuracy=0.91,
        converted_accuracy=0.62,
        accuracy=0.88,
        initial_thresholds=[1.5, 2.5, 0.9],
        initial_leaks=[1.0, 1.0, 1.0],
        history=[
            {"stage": "ann", "epoch": 1, "test_accuracy": 0.91, "thresholds": None},
            {"stage": "diet", "epoch": 1, "test_accuracy": 0.88, "leaks": [0.9, 0.8, 0.65]},
        ],
    )
    return model, info


def _error_message(path, **kwargs) -> str:
    with pytest.raises(DeployError) as caught:
        load_checkpoint(path, **kwargs)
    message = str(caught.value)
    assert "\n" not in message and message
    return message


def test_round_trip_keeps_weights_neuron_params_and_info(tmp_path):
    model, info = _model_and_info()
    path = tmp_path / "sub" / "net.pt"
    save_checkpoint(model, info, path)
    assert [p.name for p in path.parent.iterdir()] == ["net.pt"]  # no temp file left behind
    loaded, loaded_info = load_checkpoint(path)
    assert loaded_info == info
    assert loaded.thresholds() == model.thresholds()
    assert loaded.leaks() == model.leaks()
    original = model.state_dict()
    assert set(loaded.state_dict()) == set(original)
    for key, value in loaded.state_dict().items():
        assert torch.equal(value, original[key]), key
    # the info drives the loaded model's mode
    assert loaded.spiking and not loaded.training
    assert (loaded_info.timesteps, loaded.encoding.name, loaded.neuron_model.reset) == (
        7,
        "poisson",
        "hard",
    )
    assert loaded.dropout_p == 0.1
    model.eval()
    model.spiking, model.encoding = True, get_encoding("poisson")
    model.neuron_model = get_neuron_model("lif", "hard")
    x = torch.randn(4, 1, 8, 8)
    a = model.run_snn(x, 7, generator=torch.Generator().manual_seed(0)).logits
    b = loaded.run_snn(x, 7, generator=torch.Generator().manual_seed(0)).logits
    assert torch.equal(a, b)


def test_ann_checkpoint_loads_in_ann_mode(tmp_path):
    model, info = _model_and_info(stage="ann")
    save_checkpoint(model, info, tmp_path / "ann.pt")
    loaded, loaded_info = load_checkpoint(tmp_path / "ann.pt")
    assert loaded_info.stage == "ann" and not loaded.spiking
    x = torch.randn(3, 1, 8, 8)
    model.eval()
    assert torch.equal(loaded(x), model.forward_ann(x))


def test_saving_again_replaces_the_file(tmp_path):
    model, info = _model_and_info()
    path = tmp_path / "net.pt"
    save_checkpoint(model, info, path)
    model.set_neuron_params(thresholds=[2.0, 2.0, 2.0])
    save_checkpoint(model, dataclasses.replace(info, accuracy=0.5), path)
    loaded, loaded_info = load_checkpoint(path)
    assert loaded.thresholds() == [2.0, 2.0, 2.0] and loaded_info.accuracy == 0.5


# --- the official DIET-SNN format -------------------------------------------------------------

# Official VGG4 on MNIST: features 0 conv(1→64), 1 relu, 2 pool, 3 conv(64→128), 4 relu,
# 5 pool; classifier 0 linear(128·7·7→1024), 1 relu, 2 dropout, 3 linear(1024→10).
OFFICIAL_VGG4_SHAPES = {
    "features.0.weight": (64, 1, 3, 3),
    "features.3.weight": (128, 64, 3, 3),
    "classifier.0.weight": (1024, 128 * 7 * 7),
    "classifier.3.weight": (10, 1024),
}
THRESHOLDS = {"t0": 0.6, "t3": 0.25, "t6": 0.05}
LEAKS = {"l0": 0.95, "l3": 0.9, "l6": 0.85}


def _official_vgg4(spiking: bool = True) -> dict:
    """A checkpoint laid out as the official code saves an nn.DataParallel VGG4 SNN."""
    generator = torch.Generator().manual_seed(0)
    state = {
        f"module.{k}": torch.randn(shape, generator=generator) * (0.3 if "features" in k else 0.02)
        for k, shape in OFFICIAL_VGG4_SHAPES.items()
    }
    payload = {"accuracy": 0.97, "epoch": 12, "state_dict": state, "optimizer": {}}
    if spiking:
        state.update({f"module.threshold.{k}": torch.tensor(v) for k, v in THRESHOLDS.items()})
        state.update({f"module.leak.{k}": torch.tensor(v) for k, v in LEAKS.items()})
        payload.update(
            thresholds=list(THRESHOLDS.values()),
            leak=list(LEAKS.values()),
            timesteps=4,
            activation="Linear",
        )
    return payload


def _official_forward(state: dict, x: torch.Tensor, timesteps: int) -> torch.Tensor:
    """The official VGG4 forward pass, step by step: mem = λ·mem + W·x, spike where
    mem/θ − 1 > 0, mem −= θ·spike; pools on spikes; the readout accumulates W·o every step."""
    w = {k.removeprefix("module."): v for k, v in state.items()}
    conv = lambda key, h: nn.functional.conv2d(h, w[key], padding=1)  # noqa: E731
    layers = [  # (key of threshold/leak, synapse)
        ("0", lambda h: conv("features.0.weight", h)),
        ("3", lambda h: conv("features.3.weight", nn.functional.avg_pool2d(h, 2))),
        ("6", lambda h: nn.functional.avg_pool2d(h, 2).flatten(1) @ w["classifier.0.weight"].T),
    ]
    mem: dict[str, torch.Tensor] = {}
    readout = 0
    for _ in range(timesteps):
        h = x
        for key, synapse in layers:
            delta = synapse(h)
            mem[key] = w[f"leak.l{key}"] * mem.get(key, torch.zeros_like(delta)) + delta
            spike = (mem[key] / w[f"threshold.t{key}"] - 1.0 > 0).float()
            mem[key] = mem[key] - w[f"threshold.t{key}"] * spike
            h = spike
        readout = readout + h @ w["classifier.3.weight"].T
    return readout


def test_official_snn_checkpoint_loads_and_gives_the_official_logits(tmp_path):
    payload = _official_vgg4()
    torch.save(payload, tmp_path / "official.pth")
    model, info = load_checkpoint(tmp_path / "official.pth", arch="vgg4", dataset="mnist")
    assert (info.arch, info.dataset, info.stage, info.timesteps) == ("vgg4", "mnist", "snn", 4)
    assert info.accuracy == 0.97 and info.source == "official DIET-SNN"
    assert info.mean == (0.0,) and info.std == (1.0,)  # official MNIST input: pixels / 255
    assert model.thresholds() == pytest.approx(list(THRESHOLDS.values()))
    assert model.leaks() == pytest.approx(list(LEAKS.values()))
    x = torch.rand((5, 1, 28, 28), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours = model(x, info.timesteps)
        official = _official_forward(payload["state_dict"], x, 4)
    assert float(official.abs().max()) > 0  # spikes reach the readout
    torch.testing.assert_close(ours, official, rtol=1e-5, atol=1e-6)


def test_official_ann_checkpoint_loads_as_an_ann(tmp_path):
    payload = _official_vgg4(spiking=False)
    torch.save(payload, tmp_path / "ann.pth")
    model, info = load_checkpoint(tmp_path / "ann.pth", arch="vgg4", dataset="mnist")
    assert info.stage == "ann" and not model.spiking
    w = {k.removeprefix("module."): v for k, v in payload["state_dict"].items()}
    x = torch.rand((3, 1, 28, 28), generator=torch.Generator().manual_seed(2))
    h = torch.relu(nn.functional.conv2d(x, w["features.0.weight"], padding=1))
    h = torch.relu(
        nn.functional.conv2d(nn.functional.avg_pool2d(h, 2), w["features.3.weight"], padding=1)
    )
    h = torch.relu(nn.functional.avg_pool2d(h, 2).flatten(1) @ w["classifier.0.weight"].T)
    with torch.no_grad():
        torch.testing.assert_close(model(x), h @ w["classifier.3.weight"].T)


def test_official_checkpoint_without_arch_is_a_deploy_error(tmp_path):
    torch.save(_official_vgg4(), tmp_path / "official.pth")
    assert "pass --arch and --dataset" in _error_message(tmp_path / "official.pth")
    assert "pass --arch and --dataset" in _error_message(tmp_path / "official.pth", arch="vgg4")


def test_official_checkpoint_with_the_wrong_architecture_or_dataset(tmp_path):
    path = tmp_path / "official.pth"
    torch.save(_official_vgg4(), path)
    assert "do not fit architecture 'vgg5'" in _error_message(path, arch="vgg5", dataset="mnist")
    # digits' 8×8 input makes classifier.0 128·2·2 wide, not 128·7·7
    message = _error_message(path, arch="vgg4", dataset="digits")
    assert "'classifier.0.weight' has shape (1024, 6272)" in message
    assert "VGG architectures, not 'resnet20'" in _error_message(
        path, arch="resnet20", dataset="mnist"
    )
    assert "unknown dataset 'svhn'" in _error_message(path, arch="vgg4", dataset="svhn")


def test_official_checkpoint_with_a_bad_accuracy_field(tmp_path):
    payload = _official_vgg4()
    payload["accuracy"] = "high"
    torch.save(payload, tmp_path / "official.pth")
    assert "accuracy field is not a number" in _error_message(
        tmp_path / "official.pth", arch="vgg4", dataset="mnist"
    )


# --- bad files ---------------------------------------------------------------------------------


@pytest.fixture
def saved(tmp_path):
    model, info = _model_and_info()
    path = tmp_path / "net.pt"
    save_checkpoint(model, info, path)
    return path


def test_missing_file(tmp_path):
    assert "checkpoint not found" in _error_message(tmp_path / "nope.pt")
    assert "checkpoint not found" in _error_message(tmp_path)  # a directory is no checkpoint


@pytest.mark.parametrize(
    "content",
    [b"", b"\x00\x01garbage bytes that are not a checkpoint" * 10, b"PK\x03\x04" + b"\xff" * 64],
)
def test_corrupt_bytes(tmp_path, content):
    path = tmp_path / "bad.pt"
    path.write_bytes(content)
    assert "not a readable checkpoint" in _error_message(path)


@pytest.mark.parametrize("keep", [0.5, 0.98])
def test_truncated_file(saved, keep):
    data = saved.read_bytes()
    saved.write_bytes(data[: int(len(data) * keep)])
    assert "not a readable checkpoint" in _error_message(saved)


def _rewrite(path, change) -> None:
    """Change the checkpoint and sign it again, so the field checks (not the checksum) see it."""
    payload = torch.load(path, weights_only=True)
    change(payload)
    if isinstance(payload, dict):
        payload["digest"] = payload_digest(payload)
    torch.save(payload, path)


def test_nan_weights(saved):
    _rewrite(
        saved, lambda p: p["state_dict"]["features.3.weight"].view(-1).__setitem__(5, float("nan"))
    )
    assert "'features.3.weight' contains NaN" in _error_message(saved)


def test_nan_threshold(saved):
    _rewrite(
        saved, lambda p: p["state_dict"].__setitem__("threshold.t3", torch.tensor(float("inf")))
    )
    assert "'threshold.t3' contains NaN or infinite" in _error_message(saved)


def test_weights_of_another_architecture(saved):
    _rewrite(saved, lambda p: p.__setitem__("arch", "vgg5-slim"))
    assert "do not fit architecture 'vgg5-slim'" in _error_message(saved)


def test_weights_of_another_input_shape(saved):
    _rewrite(saved, lambda p: p.__setitem__("in_shape", [1, 16, 16]))
    assert "'classifier.0.weight' has shape (128, 256)" in _error_message(saved)


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda p: p.__setitem__("arch", "vgg99"), "unknown architecture 'vgg99'"),
        (lambda p: p.__setitem__("stage", "final"), "unknown stage 'final'"),
        (lambda p: p.__setitem__("timesteps", 0), "timesteps must be"),
        (lambda p: p.pop("arch"), "field missing or malformed"),
        (lambda p: p.__setitem__("in_shape", "big"), "field missing or malformed"),
    ],
)
def test_malformed_fields(saved, change, expected):
    _rewrite(saved, change)
    assert expected in _error_message(saved)


@pytest.mark.parametrize("payload", [[1, 2, 3], {"weights": {}}, {"format": FORMAT}])
def test_not_a_checkpoint_dict(tmp_path, payload):
    torch.save(payload, tmp_path / "other.pt")
    assert "not a DIET-SNN checkpoint" in _error_message(tmp_path / "other.pt")


@pytest.mark.parametrize("state", [[1, 2], 5, "weights"])
def test_state_dict_that_is_not_a_dict(saved, state):
    _rewrite(saved, lambda p: p.__setitem__("state_dict", state))
    assert "state_dict is not a dict" in _error_message(saved)


def test_state_dict_entry_that_is_not_a_tensor(saved):
    _rewrite(saved, lambda p: p["state_dict"].__setitem__("features.3.weight", [1.0, 2.0]))
    assert "'features.3.weight' is not a tensor" in _error_message(saved)


def test_pickled_code_is_refused(tmp_path):
    # weights_only loading: a checkpoint that would run code on load is rejected, not executed
    torch.save({"state_dict": {}, "hook": argparse.Namespace(a=1)}, tmp_path / "x.pt")
    assert "not a readable checkpoint" in _error_message(tmp_path / "x.pt")
