"""Datalist for a folder of 3D cases (``ROOT/<case>/<modality>.nii[.gz]`` or DICOM series folders).

Usage::

    # 3-modality MRI/PET/SPECT fusion on the SPM OldNorm templates (one case)
    python data_prep/volumes.py /path/to/volumes -o spm_datalist.json --modalities t1 pet spect
    # BraTS 2013 FLAIR/T1c with the upstream DeepMedic split
    python data_prep/volumes.py /path/to/volumes -o brats_datalist.json --modalities flair t1c \\
        --train brats2013_pat0005 brats2013_pat0006 --val brats2013_pat0003 brats2013_pat0004 \\
        --test brats2013_pat0001 brats2013_pat0002

Cases lacking a modality are skipped and listed. Cases not named by ``--train/--val/--test`` are split by case with
the fractions and seed. A thin wrapper over :func:`mmif.data.build_datalist`.
"""

from __future__ import annotations

import argparse
import sys

from mmif.data import build_datalist, format_summary, write_datalist
from mmif.errors import InputError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="folder of case folders")
    parser.add_argument("-o", "--output", required=True, help="datalist JSON to write")
    parser.add_argument("--modalities", nargs="+", help="e.g. t1 pet spect (default: those all cases share)")
    parser.add_argument("--train", nargs="+", default=[], metavar="CASE", help="cases fixed to training")
    parser.add_argument("--val", nargs="+", default=[], metavar="CASE", help="cases fixed to validation")
    parser.add_argument("--test", nargs="+", default=[], metavar="CASE", help="cases fixed to test")
    parser.add_argument("--val-fraction", type=float, default=0.1)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip-bad", action="store_true")
    parser.add_argument("--no-validate", action="store_true")
    args = parser.parse_args(argv)
    fixed = {c: "training" for c in args.train} | {c: "validation" for c in args.val} | {c: "test" for c in args.test}
    try:
        datalist, problems = build_datalist(
            args.root, layout="3d", modalities=args.modalities, split_by="case", val_fraction=args.val_fraction,
            test_fraction=args.test_fraction, seed=args.seed, case_splits=fixed, validate=not args.no_validate,
            skip_bad=args.skip_bad, progress=True,
        )
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(format_summary(datalist, problems))
    print(f"wrote {write_datalist(datalist, args.output)}")
    print("intensities: stored values are kept (MR arbitrary/z-scored, CT in HU, PET/SPECT counts); "
          "mmif.transforms.ModalityScaleIntensity maps each source to [0, 1]; the diffusion model sees x * 2 - 1")
    return 0


if __name__ == "__main__":
    sys.exit(main())
