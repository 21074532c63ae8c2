"""The ``demo`` command: the main job on the embedded digits data."""

from __future__ import annotations

from pathlib import Path

import click

from dietsnn_deploy.cli.app import cli


@cli.command()
@click.option("--workdir", default="runs/demo", show_default=True, type=click.Path(file_okay=False))
@click.option("--lava-images", default=5, show_default=True, type=click.IntRange(1))
def demo(workdir: str, lava_images: int) -> None:
    """The main job on the embedded digits data: train a DIET-SNN end to end, fine-tune it
    for the hardware, export it to netx, classify on Lava and on the emulator, and report
    its op counts and energy (files under WORKDIR/energy)."""
    from dietsnn_deploy.services.demo import run_demo

    run_demo(Path(workdir), lava_images, click.echo)
