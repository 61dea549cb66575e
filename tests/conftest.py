import os

import torch

# CI has 2 cores and pytest-xdist runs 2 workers: one thread per worker keeps them from fighting.
if os.environ.get("PYTEST_XDIST_WORKER"):
    torch.set_num_threads(1)
