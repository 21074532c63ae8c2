"""Deploy: quantize a trained checkpoint to Loihi fixed point, export it, summarise it."""

from __future__ import annotations

from pathlib import Path

from dietsnn_deploy.services.networks import LoadOptions, load_network
from dietsnn_deploy.services.outputs import check_outputs
from dietsnn_deploy.spine.network import DeployedNetwork
from exporters.netx import write_netx


def default_output(source: str | Path) -> Path:
    """``model.pt`` → ``model.net``."""
    return Path(source).with_suffix(".net")


def export(source: str | Path, output: str | Path, options: LoadOptions) -> DeployedNetwork:
    """Quantize (or re-read) ``source`` and write it to ``output`` as netx HDF5; an output
    that is the source is refused before any work."""
    check_outputs([source], [output])
    net = load_network(source, options)
    write_netx(net, output)
    return net


def quantization_table(net: DeployedNetwork) -> str:
    """Per-layer quantization summary, flagging layers whose per-step input can exceed int16."""
    lines = [
        f"{'layer':<12}{'scale':>10}{'weight RMSE':>13}{'saturated':>11}{'vThMant':>9}"
        f"{'vDecay':>8}{'max |in|':>10}"
    ]
    for q in net.quantization:
        bound = "?" if q.input_bound is None else str(q.input_bound)
        lines.append(
            f"{q.name:<12}{q.scale:>10.2f}{q.weight_rmse:>13.2e}{100 * q.weight_saturated:>10.2f}%"
            f"{q.threshold:>9d}{q.v_decay:>8d}{bound:>10}{'  > int16' if q.exceeds_int16 else ''}"
        )
    flagged = [q.name for q in net.quantization if q.exceeds_int16]
    if flagged:
        lines.append(
            f"warning: {', '.join(flagged)}: one step's input can exceed ±2^15, Loihi's int16 a_in"
            " port (Lava's simulator and the emulator pass it intact; simulate --saturate-a-in"
            " models the chip)"
        )
    return "\n".join(lines)


def export_summary(net: DeployedNetwork, output: str | Path) -> str:
    kinds = " → ".join(layer.kind for layer in net.layers)
    return f"wrote {output}: {kinds}, T={net.timesteps}"
