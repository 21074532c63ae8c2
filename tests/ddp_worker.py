"""Run by torchrun (or alone) for tests/test_distributed.py: one epoch of DIET training of a
dropout-free vgg-tiny on 128 digits with batch ``--batch`` per rank, no augmentation; rank 0
saves the final state dict to ``--out``."""

from __future__ import annotations

import argparse

import torch

from dietsnn_deploy.data import make_loader
from dietsnn_deploy.spine.settings import RunSettings
from dietsnn_deploy.training.distributed import current, join
from dietsnn_deploy.training.models import build_model
from dietsnn_deploy.training.stages import convert, train_snn


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    ranks = join(torch.device("cpu"))
    torch.manual_seed(0)  # the same initial weights on every rank
    model = build_model("vgg-tiny", (1, 8, 8), 10, dropout=0.0)
    calibration = next(iter(make_loader("digits", "train", 128, augment=False, shuffle=False)))[0]
    convert(model, calibration, timesteps=3, progress=False)
    initial = {k: v.clone() for k, v in model.state_dict().items()}
    train = make_loader("digits", "train", args.batch, augment=False, shuffle=True, limit=128,
                        rank=ranks.rank, world=ranks.world)  # fmt: skip
    test = make_loader("digits", "test", 64, limit=64)
    history = train_snn(model, train, test, epochs=1, lr=1e-3, neuron_lr=1e-2, progress=False,
                        settings=RunSettings(3))  # fmt: skip
    assert current().world == ranks.world and len(history) == 1
    if ranks.main:
        torch.save({"state": model.state_dict(), "initial": initial, "history": history}, args.out)


if __name__ == "__main__":
    main()
