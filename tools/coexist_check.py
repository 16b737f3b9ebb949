"""torch, numpy and cpuformer in one process: each runs its matmul / encode in turn, three rounds, results checked.
Prints the OpenMP / BLAS runtimes mapped into the process (/proc/self/maps). tools/test_wheel.sh runs it against
the installed wheel, once with torch imported first and once with cpuformer first.
usage: python tools/coexist_check.py torch-first|cpuformer-first"""
import re
import sys
import time

order = sys.argv[1] if len(sys.argv) > 1 else "torch-first"
if order == "torch-first":
    import torch
    import numpy as np
    import cpuformer
else:
    import cpuformer
    import numpy as np
    import torch
from cpuformer import _core, ops

torch.set_num_threads(2)
cpuformer.set_num_threads(2)
_core._set_serial_memory(False)  # no hold-serial-after-a-small-step hysteresis: every GEMM below picks 2 threads
rng = np.random.default_rng(0)
a = rng.standard_normal((384, 384)).astype(np.float32)
b = rng.standard_normal((384, 384)).astype(np.float32)
exact = a.astype(np.float64) @ b.astype(np.float64)
encoder = cpuformer.SentenceEncoder.from_pretrained()
texts = ["torch, numpy and cpuformer share one process.", "Each keeps its own thread pool."]
first = None
teams = []
start = time.perf_counter()
for round_ in range(3):
    t = (torch.from_numpy(a) @ torch.from_numpy(b)).numpy()
    n = a @ b
    c = ops.PackedLinear(b.T.copy())(a)  # y = a @ W.T with W = b.T
    teams.append(_core._last_team_size())
    e = encoder.encode(texts, normalize_embeddings=True)
    first = e if first is None else first
    for name, got in [("torch", t), ("numpy", n), ("cpuformer", c)]:
        err = float(np.abs(got - exact).max())
        assert err < 1e-3, f"{name} matmul off by {err}"
    assert np.allclose(e, first, atol=1e-6) and abs(float(e[0] @ e[0]) - 1) < 1e-5
elapsed = time.perf_counter() - start
assert teams == [2, 2, 2], f"cpuformer ran on {teams} threads"
libs = sorted({line.split()[-1] for line in open("/proc/self/maps")
               if re.search(r"gomp|iomp|libomp|openblas|scipy_openblas", line)})
print(f"coexist ({order}): torch {torch.__version__}, numpy {np.__version__}, cpuformer from {cpuformer.__file__}")
print(f"  3 rounds of torch matmul, numpy matmul, cpuformer PackedLinear (teams {teams}) + encode: ok in {elapsed:.2f} s")
print("  OpenMP / BLAS runtimes loaded:")
for lib in libs:
    print("   ", lib)
gomps = [lib for lib in libs if "gomp" in lib]
assert any("cpuformer.libs" in lib for lib in gomps), gomps
