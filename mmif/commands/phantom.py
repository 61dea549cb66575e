"""``mmif phantom``: write the synthetic multimodal head phantom (the embedded default data; no download).

::

    mmif phantom OUT [--spatial-dims 2|3] [--size 64] [--cases 4] [--slices 8] [--seed 0] [--tasks MRI_CT MRI_PET ...]
                 [--datalist OUT/datalist.json]

2D writes ``OUT/{task}/{train,test}/{MRI,CT|PET|SPECT}/NAME.png`` and ``OUT/index.csv``; 3D writes
``OUT/<case>/{mri,ct,pet,spect,label}.nii.gz``. See :mod:`mmif.data.phantom`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mmif.data.datalist import build_datalist, format_summary, write_datalist
from mmif.data.phantom import write_phantom_dataset
from mmif.errors import InputError

__all__ = ["configure", "main"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``mmif phantom`` arguments to ``parser``."""
    parser.add_argument("out", metavar="OUT", help="output folder (empty, or holding an earlier phantom)")
    parser.add_argument("--spatial-dims", type=int, choices=(2, 3), default=2, help="2D slices or 3D volumes (2)")
    parser.add_argument(
        "--size", type=int, nargs="+", metavar="N", help="image size: one value or one per axis (2D 64, 3D 48)"
    )
    parser.add_argument("--cases", type=int, default=4, help="cases per task (2D) or cases (3D) (4)")
    parser.add_argument("--slices", type=int, default=8, help="slices per case (2D) (8)")
    parser.add_argument("--test-cases", type=int, default=1, help="test cases per task (2D) (1)")
    parser.add_argument("--seed", type=int, default=0, help="dataset seed (0)")
    parser.add_argument(
        "--tasks", nargs="+", default=["MRI_CT", "MRI_PET", "MRI_SPECT"],
        help="2D tasks: modalities joined by '_' (MRI_CT MRI_PET MRI_SPECT; e.g. MRI_PET_SPECT for 3 sources)",
    )
    parser.add_argument(
        "--datalist", metavar="JSON", help="also write a datalist of the phantom (2D: upstream split; 3D: by case)"
    )


def main(args: argparse.Namespace) -> int:
    """Write the phantom (and optionally its datalist); 0 on success."""
    size = None if not args.size else (args.size[0] if len(args.size) == 1 else tuple(args.size))
    try:
        root = write_phantom_dataset(
            args.out,
            n_cases=args.cases,
            slices_per_case=args.slices,
            size=size,
            spatial_dims=args.spatial_dims,
            seed=args.seed,
            tasks=tuple(args.tasks),
            test_cases=args.test_cases,
        )
    except ValueError as e:
        if isinstance(e, InputError):
            raise
        raise InputError(None, str(e)) from e
    print(f"wrote the synthetic phantom to {root}")
    if args.datalist:
        datalist, problems = build_datalist(root, validate=False, seed=args.seed)
        path = write_datalist(datalist, Path(args.datalist).absolute())
        print(format_summary(datalist, problems))
        print(f"wrote {path}")
    return 0
