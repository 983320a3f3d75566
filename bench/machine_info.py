"""What machine a benchmark ran on, in words (numbers from different CPUs differ by 30 %+)."""

from __future__ import annotations

import os
import platform
from pathlib import Path


def cpu_name() -> str:
    """The CPU model as the kernel reports it; the architecture where /proc/cpuinfo has none."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line() -> str:
    """'<cpu model>, <n> cores' for a result's `machine` field."""
    return f"{cpu_name()}, {os.cpu_count()} cores"
