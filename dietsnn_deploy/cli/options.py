"""Options shared by the commands that read a model file: what a NIR graph may not say."""

from __future__ import annotations

import click


def _floats(ctx, param, text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        return tuple(float(v) for v in text.split(","))
    except ValueError:
        raise click.BadParameter(f"{text!r} is not a comma-separated list of numbers") from None


def graph_options(fn):
    """``--dt``, ``--mean`` and ``--std`` for NIR graphs (ignored by other files)."""
    options = [
        click.option(
            "--dt",
            type=click.FloatRange(0, min_open=True),
            help="NIR graphs: seconds per step (default: the graph's, else 1e-4)",
        ),  # fmt: skip
        click.option(
            "--mean",
            callback=_floats,
            help="NIR graphs: input normalisation mean per channel, comma-separated",
        ),  # fmt: skip
        click.option(
            "--std",
            callback=_floats,
            help="NIR graphs: input normalisation std per channel, comma-separated",
        ),  # fmt: skip
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def spike_input_options(fn):
    """``--spikes``, ``--labels`` and ``--readout`` for networks that take spikes (netx files
    of other tools)."""
    options = [
        click.option(
            "--spikes",
            type=click.Path(dir_okay=False),
            help="spike input: .npy rasters (N, T, *input shape) of 0/1 instead of test images "
            "(default: spikes rate-coded from --dataset's pixels)",
        ),  # fmt: skip
        click.option(
            "--labels",
            type=click.Path(dir_okay=False),
            help="labels (N,) of the --spikes rasters, a .npy of class indices",
        ),  # fmt: skip
        click.option(
            "--readout",
            type=click.Choice(["spikes", "potential"]),
            help="netx files of other tools: class scores from the last layer's spike counts "
            "(default) or its potential",
        ),  # fmt: skip
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn
