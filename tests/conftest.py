import os

# Before torch loads: idle OpenMP threads sleep instead of spin-waiting (on 2 shared cores spinning made small ops
# 10-100x slower).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

# CI has 2 cores and pytest-xdist runs 2 workers: one thread per worker keeps them from fighting.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
