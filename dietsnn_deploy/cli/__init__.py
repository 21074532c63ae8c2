"""The ``dietsnn-deploy`` command line. Importing the command modules registers them on the
group; ``main`` is the console script's entry point."""

from dietsnn_deploy.cli import demo, deploy, energy, train  # noqa: F401  (registers commands)
from dietsnn_deploy.cli.app import cli, main

__all__ = ["cli", "main"]
