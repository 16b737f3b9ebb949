"""Peak memory of code run in a fresh Python process, for the tests that bound memory on untrusted sizes.

The peak comes from the child's own /proc/self/status VmHWM: getrusage's ru_maxrss (and wait4's) also counts the
parent's peak at the time of fork + exec on Linux, so a big pytest process would hide the child's own growth."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import cpuformer

# Where this test process imports cpuformer from (src/ in a dev tree, site-packages when installed, as in CI):
# the child must load the same build, never a source tree without the compiled _core.
PACKAGE_PARENT = str(Path(cpuformer.__file__).resolve().parents[1])

PRELUDE = '''
def peak_rss_mb():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc/self/status")
'''


def python_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = PACKAGE_PARENT + os.pathsep + env.get("PYTHONPATH", "")
    return env


def run_measuring_peak_rss(code: str, timeout: float = 300) -> str:
    """Runs `code` (which may call peak_rss_mb()) in a fresh interpreter and returns its stdout, stripped."""
    done = subprocess.run([sys.executable, "-c", PRELUDE + textwrap.dedent(code)], env=python_env(),
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()
