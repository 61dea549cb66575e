"""``mmif prepare``: build a MONAI datalist JSON from a 2D folder or a folder of 3D cases, validating every sample.

::

    mmif prepare ROOT -o datalist.json [--layout auto|2d|3d] [--modalities t1 pet spect] [--tasks MRI_CT ...]
                 [--split-by upstream|case] [--val-fraction 0.1] [--test-fraction 0.2] [--seed 0]
                 [--skip-bad] [--no-validate]

It prints the number of samples (and cases) per task and split, and every skipped item with its reason.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from mmif.data.datalist import build_datalist, format_summary, write_datalist
from mmif.errors import InputError

__all__ = ["configure", "main"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``mmif prepare`` arguments to ``parser``."""
    parser.add_argument(
        "root", metavar="ROOT",
        help="ROOT/{task}/[{split}/]{MRI,CT|PET|SPECT}/NAME.png or ROOT/<case>/<modality>.nii.gz",
    )
    parser.add_argument("-o", "--output", required=True, metavar="JSON", help="the datalist file to write")
    parser.add_argument(
        "--layout", choices=("auto", "2d", "3d"), default="auto", help="folder layout (default: detect)"
    )
    parser.add_argument(
        "--modalities", nargs="+", metavar="NAME",
        help="3D: modalities to fuse, e.g. t1 pet spect (default: those all cases share); 2D: modality folders to use",
    )
    parser.add_argument("--tasks", nargs="+", metavar="TASK", help="2D: task folders to keep (default: all)")
    parser.add_argument(
        "--split-by", choices=("upstream", "case"), default="upstream",
        help="upstream: keep train/test folders and carve validation out of training by case id; "
        "case: re-split every task by case id (no subject in two splits)",
    )
    parser.add_argument("--val-fraction", type=float, default=0.1, help="fraction of cases for validation (0.1)")
    parser.add_argument(
        "--test-fraction", type=float, default=0.2, help="fraction of cases for test where cases are split (0.2)"
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the case split (0)")
    parser.add_argument("--skip-bad", action="store_true", help="drop bad samples and list them instead of failing")
    parser.add_argument("--no-validate", action="store_true", help="only check the pairing; do not read the images")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")


def main(args: argparse.Namespace) -> int:
    """Build, summarise and write the datalist; 0 on success (input errors propagate as :class:`InputError`)."""
    root, output = Path(args.root).absolute(), Path(args.output).absolute()
    if output.suffix.lower() != ".json" or output.is_dir():
        raise InputError(output, "the datalist must be a .json file (e.g. -o datalist.json)")
    try:
        datalist, problems = build_datalist(
            root,
            layout=args.layout,
            modalities=args.modalities,
            tasks=args.tasks,
            split_by=args.split_by,
            val_fraction=args.val_fraction,
            test_fraction=args.test_fraction,
            seed=args.seed,
            validate=not args.no_validate,
            skip_bad=args.skip_bad,
            progress=not args.no_progress,
        )
    except ValueError as e:
        if isinstance(e, InputError):
            raise
        raise InputError(None, str(e)) from e
    write_datalist(datalist, output)
    print(format_summary(datalist, problems))
    print(f"wrote {output}")
    return 0
