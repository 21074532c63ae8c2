"""No Lava process outlives a run, whatever signal ends it: SIGINT and SIGTERM stop the runtime
cleanly (exit 130 / 143, one error line); SIGKILL of the parent takes its runtime with it.

Each case runs the real ``dietsnn-deploy simulate --backend lava`` in a subprocess, waits for
Lava's runtime processes, signals the command, and counts the processes that still carry the
run's marker in their environment (a killed parent's children are re-parented, so ancestry
cannot be used)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
from fixtures_nets import random_network

from exporters.netx import write_netx

pytestmark = pytest.mark.lava
SCRIPT = Path(sys.executable).with_name("dietsnn-deploy")


def _marked(marker: str) -> list[int]:
    """Processes whose environment holds ``marker``."""
    found = []
    needle = f"DIETSNN_SIGNAL_TEST={marker}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in environ.split(b"\0") and state != "Z":
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="module")
def network(tmp_path_factory):
    """A network the digits test set fits (1×8×8 input) and that Lava needs seconds for."""
    net = random_network("conv", 3, in_shape=(1, 8, 8), channels=4, num_classes=10)
    net.dataset = "digits"
    path = tmp_path_factory.mktemp("signals") / "digits.net"
    write_netx(net, path)
    return path


def _default_signals() -> None:
    """The command starts with the default SIGINT and SIGHUP actions, as from a terminal, even
    when the tests run under nohup or as a background job (which start with both ignored)."""
    for signum in (signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, signal.SIG_DFL)


def _start(network: Path) -> tuple[subprocess.Popen, str]:
    marker = uuid.uuid4().hex
    env = {**os.environ, "DIETSNN_SIGNAL_TEST": marker}
    command = [str(SCRIPT), "simulate", str(network), "--backend", "lava", "-n", "300", "--json"]
    process = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=_default_signals,
    )
    deadline = time.monotonic() + 120
    while len(_marked(marker)) < 4:  # the command and Lava's runtime processes
        assert process.poll() is None, process.communicate()
        assert time.monotonic() < deadline, "Lava's runtime did not start"
        time.sleep(0.2)
    time.sleep(1.0)  # well inside the run
    return process, marker


def _gone(marker: str, timeout: float = 20.0) -> list[int]:
    deadline = time.monotonic() + timeout
    while _marked(marker) and time.monotonic() < deadline:
        time.sleep(0.2)
    return _marked(marker)


@pytest.mark.parametrize(
    "signum, status", [(signal.SIGINT, 130), (signal.SIGTERM, 143), (signal.SIGHUP, 129)]
)
def test_interrupt_and_terminate_stop_the_runtime(network, signum, status):
    process, marker = _start(network)
    before = len(_marked(marker))
    process.send_signal(signum)
    _, err = process.communicate(timeout=60)
    assert process.returncode == status, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: interrupted"), err
    assert "Traceback" not in err
    assert before >= 4 and _gone(marker) == []


def test_killing_the_parent_takes_the_runtime_with_it(network):
    process, marker = _start(network)
    before = len(_marked(marker))
    process.kill()  # SIGKILL: no handler runs in the parent
    process.communicate(timeout=30)
    assert before >= 4 and _gone(marker) == []
