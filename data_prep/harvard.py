"""Datalist for the Harvard Whole Brain Atlas fusion pairs (``harvard/{MRI_CT,MRI_PET,MRI_SPECT}/{train,test}/...``).

Usage::

    python data_prep/harvard.py /path/to/harvard -o harvard_datalist.json [--split-by case] [--seed 0]

``--split-by upstream`` (default) keeps the repository's train/test folders, which split by **slice**: neighbouring
slices of one subject fall in train and test. ``--split-by case`` re-splits by subject (``case_id`` of
``index.csv``), with no subject in two splits. A thin wrapper over :func:`mmif.data.build_datalist`.
"""

from __future__ import annotations

import argparse
import sys

from mmif.data import build_datalist, format_summary, write_datalist
from mmif.errors import InputError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="the harvard/ folder (holding index.csv and the task folders)")
    parser.add_argument("-o", "--output", required=True, help="datalist JSON to write")
    parser.add_argument("--split-by", choices=("upstream", "case"), default="upstream")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--test-fraction", type=float, default=0.2, help="with --split-by case")
    parser.add_argument("--tasks", nargs="+", help="e.g. MRI_CT MRI_SPECT (default: all)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-bad", action="store_true")
    parser.add_argument("--no-validate", action="store_true", help="only check pairing (fast)")
    args = parser.parse_args(argv)
    try:
        datalist, problems = build_datalist(
            args.root, layout="2d", tasks=args.tasks, split_by=args.split_by, val_fraction=args.val_fraction,
            test_fraction=args.test_fraction, seed=args.seed, validate=not args.no_validate, skip_bad=args.skip_bad,
            progress=True,
        )
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_summary(datalist, problems))
    print(f"wrote {write_datalist(datalist, args.output)}")
    print("intensities: 8-bit PNG (MRI/CT grey, PET/SPECT pseudo-colour RGB); mmif.transforms scales x/255 to [0, 1] "
          "and fuses the BT.601 Y channel; the diffusion model sees x * 2 - 1 in [-1, 1]")
    return 0


if __name__ == "__main__":
    sys.exit(main())
