"""``mmif bench``: print speed figures for a part of mmif.

Example::

    mmif bench metrics --repeats 20 --threads 2

Targets come from :data:`mmif.bench.TARGETS`: ``metrics`` (the 13 default fusion metrics on one 256² triple) and
``fuse`` (the learned fusion beside the classical baselines on one 256² pair, :mod:`mmif.bench_fuse`).
"""

from __future__ import annotations

import argparse
import sys

__all__ = ["configure", "main"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``bench`` arguments to ``parser``."""
    from mmif.bench import TARGETS, add_target_options

    parser.add_argument("target", choices=sorted(TARGETS), help="what to time")
    parser.add_argument("--repeats", type=int, default=20, metavar="N", help="timed runs; the median is reported")
    parser.add_argument("--warmup", type=int, default=2, metavar="N", help="untimed runs first (default 2)")
    parser.add_argument("--threads", type=int, default=2, metavar="N", help="torch CPU threads (default 2)")
    parser.add_argument("--size", type=int, default=256, metavar="PX",
                        help="side of the test images (the real pair is resized for fuse; generated images otherwise)")
    add_target_options(parser)  # each target's own options (fuse: --preset, --timesteps, --override, ...)


def main(args: argparse.Namespace) -> int:
    import torch

    from mmif.bench import TARGETS

    if args.repeats < 1 or args.threads < 1 or args.warmup < 0:
        print("mmif bench: error: --repeats and --threads must be >= 1, --warmup >= 0", file=sys.stderr)
        return 2
    torch.set_num_threads(args.threads)
    TARGETS[args.target](args)
    return 0
