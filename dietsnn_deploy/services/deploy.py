"""Deploy: quantize a trained checkpoint (or NIR graph) to Loihi fixed point and export it, or
write its float network as a NIR graph; summarise what was written."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from dietsnn_deploy.services.networks import LoadOptions, load_network, load_spiking
from dietsnn_deploy.services.outputs import check_outputs
from dietsnn_deploy.spine.float_network import FloatNetwork
from dietsnn_deploy.spine.network import DeployedNetwork
from dietsnn_deploy.training.float_view import to_float_network
from exporters.netx import write_netx
from exporters.nir import DEFAULT_DT, soft_reset_warning, write_nir


def format_of(output: str | Path | None) -> str:
    """The export format an output path asks for: ``nir`` for a ``.nir`` file, else netx."""
    return "nir" if output is not None and Path(output).suffix.lower() == ".nir" else "netx"


def default_output(source: str | Path, file_format: str = "netx") -> Path:
    """``model.pt`` → ``model.net`` (``model.nir`` for NIR)."""
    return Path(source).with_suffix(".nir" if file_format == "nir" else ".net")


def export_nir(
    source: str | Path, output: str | Path, options: LoadOptions, *, allow_soft_reset: bool
) -> tuple[FloatNetwork, str | None]:
    """Write the float network of ``source`` (a trained checkpoint or a NIR graph) to ``output``
    as a NIR graph at ``options.dt`` (default 1e-4 s); returns it and the warning a soft-reset
    model must carry (:func:`exporters.nir.soft_reset_warning`)."""
    check_outputs([source], [output])
    model, info = load_spiking(source, options)
    metadata = {"timesteps": options.timesteps or info.timesteps, "encoding": info.encoding,
                "mean": list(info.mean), "std": list(info.std), "dataset": info.dataset}  # fmt: skip
    net = to_float_network(model, metadata)
    dt = options.dt or DEFAULT_DT
    write_nir(net, output, dt, allow_soft_reset=allow_soft_reset)
    return replace(net, metadata={**net.metadata, "dt": dt}), soft_reset_warning(net)


def nir_summary(net: FloatNetwork, output: str | Path) -> str:
    layers = " → ".join(
        f"{layer.name}({'LIF' if layer.neuron and layer.neuron.leak < 1 else 'IF' if layer.neuron else 'I'})"
        for layer in net.layers
    )
    return f"wrote {output}: NIR graph {layers}, {net.reset} reset, dt {net.metadata.get('dt', DEFAULT_DT)} s"


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
