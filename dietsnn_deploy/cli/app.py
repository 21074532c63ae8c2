"""The ``dietsnn-deploy`` command group and its entry point: bad input ends with one
``error:`` line (at most about 240 characters) and exit status 2; Ctrl-C with 130, SIGTERM with
143, SIGHUP with 129, each after the run's cleanup (temporary files, Lava runtimes)."""

from __future__ import annotations

import sys

import click

from dietsnn_deploy.errors import DeployError
from dietsnn_deploy.interrupts import exit_status, install_termination_handlers

MAX_MESSAGE = 240  # characters of an error line


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """Train DIET-SNNs and deploy them to Loihi fixed point."""


def main() -> None:
    """Entry point: run the CLI, turning bad input into one line and a non-zero exit."""
    install_termination_handlers()
    try:
        cli.main(standalone_mode=False)
    except DeployError as exc:
        _fail(str(exc), 2)
    except click.exceptions.NoArgsIsHelpError as exc:  # a bare group: show its help
        click.echo(exc.ctx.get_help() if exc.ctx else "")
        sys.exit(0)
    except click.ClickException as exc:
        hint = f" (see '{exc.ctx.command_path} --help')" if getattr(exc, "ctx", None) else ""
        _fail(exc.format_message() + hint, exc.exit_code)
    except (click.exceptions.Abort, KeyboardInterrupt) as exc:  # Ctrl-C, SIGTERM, SIGHUP
        cause = exc if isinstance(exc, KeyboardInterrupt) else exc.__context__  # click wraps it
        interrupt = cause if isinstance(cause, KeyboardInterrupt) else KeyboardInterrupt()
        reason = f" ({interrupt})" if str(interrupt) else ""
        _fail(f"interrupted{reason}", exit_status(interrupt))
    except OSError as exc:  # unreadable input, unwritable output, disk full
        where = f"{exc.filename}: " if exc.filename else ""
        _fail(f"{where}{exc.strerror or exc}", 2)


def _fail(message: str, status: int) -> None:
    """One ``error:`` line on stderr (newlines folded, cut to :data:`MAX_MESSAGE`), then exit
    with ``status``."""
    line = " ".join(message.split())
    if len(line) > MAX_MESSAGE:
        line = line[: MAX_MESSAGE - 1] + "…"
    click.echo(f"error: {line}", err=True)
    sys.exit(status)
