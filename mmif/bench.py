"""Benchmark machinery behind ``mmif bench``: named targets that time a part of mmif and print figures.

:data:`TARGETS` maps a target name to ``run(args) -> None``; ``args`` is the parsed ``mmif bench`` namespace
(``repeats``, ``threads``, ``size``, ``warmup``). Add a target with :func:`register_target` (or an entry in
:data:`TARGETS`); the CLI lists whatever is registered. A target with options of its own registers a
``configure(parser)`` too (:data:`TARGET_OPTIONS`); :func:`add_target_options` adds them to the ``mmif bench`` parser,
and a target reads them with ``getattr(args, name, default)`` so it also runs from a parser without them.

Targets: ``metrics`` (here) and ``fuse`` (:mod:`mmif.bench_fuse`, imported at the end of this module).

Timings are wall-clock medians over ``repeats`` runs after ``warmup`` runs, with ``torch.set_num_threads(threads)``.
They depend on the machine and its load: report them with the command and the machine state.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

__all__ = [
    "TARGETS",
    "TARGET_OPTIONS",
    "register_target",
    "add_target_options",
    "time_call",
    "metric_triple",
    "run_metrics",
]

#: target name -> ``run(args)``; other modules add their own targets.
TARGETS: dict[str, Callable[[argparse.Namespace], None]] = {}


#: target name -> ``configure(parser)`` adding the target's own options.
TARGET_OPTIONS: dict[str, Callable[[argparse.ArgumentParser], None]] = {}


def register_target(
    name: str,
    run: Callable[[argparse.Namespace], None],
    configure: Callable[[argparse.ArgumentParser], None] | None = None,
) -> Callable[[argparse.Namespace], None]:
    """Add ``run`` to :data:`TARGETS` under ``name`` (returns ``run``, so it can decorate), and its option-adding
    ``configure(parser)`` to :data:`TARGET_OPTIONS` when given."""
    TARGETS[name] = run
    if configure is not None:
        TARGET_OPTIONS[name] = configure
    return run


def add_target_options(parser: argparse.ArgumentParser) -> None:
    """Add every registered target's own options to ``parser``, one argument group per target (once per parser)."""
    if parser.get_default("_bench_target_options"):
        return
    parser.set_defaults(_bench_target_options=True)
    for name, configure in sorted(TARGET_OPTIONS.items()):
        configure(parser.add_argument_group(f"{name} options"))


def time_call(fn: Callable[[], object], repeats: int, warmup: int = 1) -> tuple[float, float, float]:
    """``(median wall, min wall, median CPU)`` seconds of ``fn()`` over ``repeats`` runs after ``warmup`` runs.

    CPU time is the process time (all threads); on a loaded machine it is the steadier figure of the work done.
    """
    for _ in range(max(0, warmup)):
        fn()
    wall, cpu = [], []
    for _ in range(max(1, repeats)):
        c0, t0 = time.process_time(), time.perf_counter()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), min(wall), statistics.median(cpu)


def _generated_triple(size: int, seed: int = 0) -> tuple[np.ndarray, list[np.ndarray], str]:
    """Two smooth structured 8-bit images and their rounded average (deterministic)."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size), torch.linspace(-1, 1, size), indexing="ij")
    head = ((xx / 0.8) ** 2 + (yy / 0.9) ** 2 < 1).double()
    images = []
    for k in range(2):
        noise = torch.rand((1, 1, size // 8 + 1, size // 8 + 1), generator=g, dtype=torch.float64)
        tex = torch.nn.functional.interpolate(noise, size=(size, size), mode="bicubic", align_corners=True)[0, 0]
        ring = (((xx / 0.8) ** 2 + (yy / 0.9) ** 2 - 0.85).abs() < 0.08).double()
        img = head * (80 + 120 * tex) + (100 if k == 0 else 60) * ring
        images.append(img.clamp(0, 255).round().numpy())
    fused = np.round((images[0] + images[1]) / 2.0)
    return fused, images, f"generated {size}x{size} (no real data found)"


def metric_triple(size: int = 256) -> tuple[np.ndarray, list[np.ndarray], str]:
    """A fused image and its two sources on 0..255 for timing metrics.

    Uses the first MRI/CT pair of ``harvard/MRI_CT/test`` when :func:`mmif.data.find_data_root` finds the real
    data (fused = rounded average), else generated images of ``size``².
    """
    from mmif.data import find_data_root
    from mmif.metrics import to_gray8

    root = find_data_root()
    folder = None if root is None else Path(root) / "harvard" / "MRI_CT" / "test"
    if folder is not None and (folder / "MRI").is_dir():
        from PIL import Image

        for mri in sorted((folder / "MRI").glob("*.png")):
            ct = folder / "CT" / mri.name
            if ct.is_file():
                a = to_gray8(np.asarray(Image.open(mri).convert("RGB")))
                b = to_gray8(np.asarray(Image.open(ct).convert("RGB")))
                fused = np.round((a + b) / 2.0)
                return fused, [a, b], f"harvard MRI_CT/test/{mri.name} {a.shape[0]}x{a.shape[1]}, fused = average"
    return _generated_triple(size)


def run_metrics(args: argparse.Namespace) -> None:
    """Time every default metric alone and all 13 together (:func:`mmif.metrics.compute_metrics`)."""
    from mmif.metrics import DEFAULT_METRICS, compute_metrics

    repeats, warmup = int(getattr(args, "repeats", 20)), int(getattr(args, "warmup", 2))
    fused, sources, what = metric_triple(int(getattr(args, "size", 256) or 256))
    print(f"metrics on {what}; torch threads {torch.get_num_threads()}, median of {repeats} runs")
    print(f"{'metric':<10} {'wall ms':>9} {'min ms':>8} {'cpu ms':>8}")
    for name in DEFAULT_METRICS:
        med, best, cpu = time_call(lambda n=name: compute_metrics(fused, sources, names=[n]), repeats, warmup)
        print(f"{name:<10} {med * 1e3:>9.2f} {best * 1e3:>8.2f} {cpu * 1e3:>8.2f}")
    med, best, cpu = time_call(lambda: compute_metrics(fused, sources), repeats, warmup)
    print(f"{'ALL 13':<10} {med * 1e3:>9.2f} {best * 1e3:>8.2f} {cpu * 1e3:>8.2f}   (target: <= 100 ms wall)")
    print("cpu = process time of all threads; wall figures inflate when other processes share the cores")


register_target("metrics", run_metrics)


# registers the "fuse" target (mmif.bench_fuse imports register_target and time_call from above)
import mmif.bench_fuse  # noqa: E402,F401  (isort: skip)
