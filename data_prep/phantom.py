"""Write the synthetic multimodal head phantom (mmif's embedded default data) and its datalist.

Usage::

    python data_prep/phantom.py OUT [--spatial-dims 2|3] [--size 64] [--cases 4] [--slices 8] [--seed 0]

Writes ``OUT/{task}/{train,test}/{MRI,CT|PET|SPECT}/NAME.png`` + ``OUT/index.csv`` (2D) or
``OUT/<case>/{mri,ct,pet,spect,label}.nii.gz`` (3D), and ``OUT/datalist.json``. The same as
``mmif phantom OUT --datalist OUT/datalist.json``; a thin wrapper over :func:`mmif.data.write_phantom_dataset`.
"""

from __future__ import annotations

import argparse
import sys

from mmif.data import build_datalist, format_summary, write_datalist, write_phantom_dataset
from mmif.errors import InputError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", help="output folder (empty or an earlier phantom)")
    parser.add_argument("--spatial-dims", type=int, choices=(2, 3), default=2)
    parser.add_argument("--size", type=int, default=None, help="2D default 64, 3D default 48")
    parser.add_argument("--cases", type=int, default=4)
    parser.add_argument("--slices", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    try:
        root = write_phantom_dataset(
            args.out, n_cases=args.cases, slices_per_case=args.slices, size=args.size,
            spatial_dims=args.spatial_dims, seed=args.seed,
        )
        datalist, problems = build_datalist(root, seed=args.seed)
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_summary(datalist, problems))
    print(f"wrote {write_datalist(datalist, root / 'datalist.json')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
