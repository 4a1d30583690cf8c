"""Long-running commands whose port is taken say so in one line, without a traceback."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.conftest import TEST_DATABASE


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A loopback port some other program is listening on."""
    with socket.socket() as other:
        other.bind(("127.0.0.1", 0))
        other.listen()
        yield other.getsockname()[1]


def gridmap(*args: str) -> subprocess.CompletedProcess:
    """Run the gridmap command against the test database."""
    env = {**os.environ, "GRIDMAP_DATABASE": TEST_DATABASE}
    return subprocess.run([sys.executable, "-m", "web.cli", *args], capture_output=True,
                          text=True, env=env, timeout=120, check=False)


@pytest.mark.usefixtures("database_url")
@pytest.mark.parametrize("command", [
    ["serve", "--port", "{port}"],
    ["sampler", "--processes", "1", "--threads", "1", "--metrics-port", "{port}",
     "--duration", "1", "--no-crowd"],
])
def test_a_taken_port_is_a_clear_error(taken_port, command):
    result = gridmap(*(arg.format(port=taken_port) for arg in command))
    assert result.returncode == 1
    assert "Traceback" not in result.stderr + result.stdout
    assert f"127.0.0.1:{taken_port}" in result.stderr
    assert "Address already in use" in result.stderr and "Stop it" in result.stderr
