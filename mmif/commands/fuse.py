"""``mmif fuse``: fuse one set of co-registered sources, or a whole folder, with any fusion method.

Single sample::

    mmif fuse --mri A.png --other B.png [--other C.png] -o F.png

Folder in the common layout (``DIR/{MRI, CT|PET|SPECT}/NAME.ext`` -> ``OUT/NAME.png``; volumes -> ``OUT/NAME.nii.gz``)::

    mmif fuse --input-dir DIR --output-dir OUT

The default method is the learned ``dmfnet`` of the default bundle (``bundles/brain_mmif_2d``) when its trained
weights are present; otherwise a method must be chosen (e.g. ``--method laplacian``). Colour PET/SPECT sources keep
their colour (fused Y + their Cb/Cr); NIfTI outputs keep the first source's geometry. Outputs never overwrite inputs.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch

from mmif.errors import InputError

__all__ = ["configure", "main", "build_method"]


def configure(parser: argparse.ArgumentParser) -> None:
    """Add the ``mmif fuse`` arguments to ``parser``."""
    single = parser.add_argument_group("one sample")
    single.add_argument("--mri", metavar="PATH", help="the anatomical (MRI) source: a 2D image or a volume")
    single.add_argument(
        "--other", metavar="PATH", action="append", default=[], help="another source (CT, PET, SPECT); repeat for 3"
    )
    single.add_argument("-o", "--output", metavar="PATH", help="the fused output (.png for 2D, .nii.gz for volumes)")
    single.add_argument(
        "--modalities", nargs="+", metavar="NAME",
        help="modality names of --mri and each --other (default: MRI, then each file's folder name)",
    )
    folder = parser.add_argument_group("a folder")
    folder.add_argument("--input-dir", metavar="DIR", help="DIR/{MRI, CT|PET|SPECT}/NAME.ext")
    folder.add_argument("--output-dir", metavar="OUT", help="writes OUT/NAME.png (2D) or OUT/NAME.nii.gz (3D)")
    method = parser.add_argument_group("method")
    method.add_argument(
        "--method", default=None,
        help="a registered fusion method (dmfnet, average, maxabs, laplacian, dwt, ...); default: dmfnet when its "
        "trained weights are available",
    )
    method.add_argument("--bundle", metavar="DIR", help="dmfnet: the bundle folder (default bundles/brain_mmif_2d)")
    method.add_argument("--checkpoint", metavar="PATH", help="dmfnet: the Stage II (fusion head) checkpoint")
    method.add_argument("--stage1-ckpt", metavar="PATH", help="dmfnet: the Stage I (diffusion UNet) checkpoint")
    method.add_argument("--seed", type=int, default=0, help="seed of any random numbers (the diffusion noise)")
    method.add_argument(
        "--window", type=int, nargs="+", metavar="N",
        help="sliding-window size (one value for all axes, or one per axis); default: whole images",
    )
    method.add_argument("--overlap", type=float, default=0.25, help="sliding-window overlap fraction")
    method.add_argument("--device", default="cpu", help="torch device (default cpu)")
    method.add_argument("--no-progress", action="store_true", help="no progress bar for folders")


def _window(args: argparse.Namespace):
    if not args.window:
        return None
    if any(w < 1 for w in args.window):
        raise InputError(None, f"--window sizes must be positive, got {args.window}")
    return args.window[0] if len(args.window) == 1 else tuple(args.window)


def build_method(args: argparse.Namespace):
    """The fusion method and the inferer that runs it, from the parsed arguments.

    Returns:
        ``(name, method, inferer)``; ``inferer(image, method)`` fuses ``(B, M, *spatial)``.

    Raises:
        InputError: no method given and no trained ``dmfnet`` weights, an unknown method, or missing weights.
    """
    import mmif.fusion.learned as learned
    from mmif.fusion import get_fusion_method
    from mmif.inferers import FusionInferer

    name = args.method
    if name is None:
        if args.checkpoint or args.stage1_ckpt or learned.weights_available(args.bundle):
            name = "dmfnet"
        else:
            bundle = Path(args.bundle) if args.bundle else learned.default_bundle_dir()
            raise InputError(
                bundle / "models",
                "no trained dmfnet weights, so there is no default method: train the bundle (see its docs/README.md) "
                "or choose a classical method, e.g. --method laplacian",
            )
    window = _window(args)
    if name.strip().lower() == "dmfnet":
        kwargs = {"seed": args.seed, "roi_size": window, "overlap": args.overlap, "device": args.device}
        for key, value in (("bundle", args.bundle), ("checkpoint", args.checkpoint), ("stage1_ckpt", args.stage1_ckpt)):
            if value:
                kwargs[key] = value
        method = get_fusion_method("dmfnet", **kwargs)
        inferer = FusionInferer(roi_size=None, seed=args.seed)  # dmfnet windows itself (it knows its UNet's divisor)
    else:
        try:
            method = get_fusion_method(name)
        except ValueError as e:
            raise InputError(None, str(e)) from e
        inferer = FusionInferer(roi_size=window, overlap=args.overlap, seed=args.seed)
    return name, method, inferer


def _fuse(sample: dict, method, inferer, device: str) -> dict:
    """Load one sample, fuse it, and return the item that :class:`~mmif.inferers.SaveFusedd` writes."""
    from mmif.fusion.base import check_fusion_input
    from mmif.transforms.loading import LoadFusionSourcesd

    item = LoadFusionSourcesd(keys="image")(sample)
    image = item["image"]
    try:
        x = check_fusion_input(image[None], type(method).__name__).to(device)
    except ValueError as e:
        raise InputError(sample["image"][0], str(e)) from e
    try:
        with torch.no_grad():
            fused = inferer(x, method)[0].cpu()
    except ValueError as e:  # e.g. a --window that does not suit the network
        if isinstance(e, InputError):
            raise
        raise InputError(sample["image"][0], str(e)) from e
    from monai.data import MetaTensor

    item["pred"] = MetaTensor(fused, meta=dict(image.meta))
    return item


def _single(args: argparse.Namespace) -> list[dict]:
    from mmif.transforms.loading import modality_from_path

    if not args.other:
        raise InputError(args.mri, "needs at least one --other source to fuse with")
    if not args.output:
        raise InputError(None, "give the output file with -o/--output")
    paths = [args.mri, *args.other]
    for p in paths:
        if not Path(p).exists():
            raise InputError(p, "file not found")
    mods = args.modalities or ["MRI", *[modality_from_path(p) for p in args.other]]
    if len(mods) != len(paths):
        raise InputError(None, f"--modalities gives {len(mods)} names for {len(paths)} sources")
    out = Path(args.output)
    if out.resolve() in {Path(p).resolve() for p in paths}:
        raise InputError(out, "output would overwrite an input file; choose another output path")
    from mmif.io import image_suffix, is_raster

    spatial_dims = 2 if is_raster(paths[0]) else 3
    want = ".png" if spatial_dims == 2 else ".nii.gz"
    suffix = image_suffix(out)
    if (spatial_dims == 2 and suffix not in (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")) or (
        spatial_dims == 3 and suffix not in (".nii", ".nii.gz")
    ):
        raise InputError(out, f"output type {suffix or '(none)'} does not suit {spatial_dims}D sources (use {want})")
    name = out.name[: -len(suffix)]
    return [{"image": paths, "modalities": mods, "name": name, "spatial_dims": spatial_dims, "_out": out}]


def main(args: argparse.Namespace) -> int:
    """Run ``mmif fuse``; returns 0 on success (errors are :class:`~mmif.errors.InputError`)."""
    from mmif.inferers import SaveFusedd, find_fusion_samples

    single = bool(args.mri or args.other or args.output)
    folder = bool(args.input_dir or args.output_dir)
    if single == folder:
        raise InputError(None, "give either --mri/--other/-o (one sample) or --input-dir/--output-dir (a folder)")
    if folder:
        if not (args.input_dir and args.output_dir):
            raise InputError(args.input_dir or args.output_dir, "--input-dir and --output-dir go together")
        samples = find_fusion_samples(args.input_dir)
        out_dir = Path(args.output_dir)
    else:
        samples = _single(args)
        out_dir = samples[0].pop("_out").parent
    name, method, inferer = build_method(args)
    method = method.to(args.device).eval() if hasattr(method, "to") else method
    writer = SaveFusedd(keys="pred", output_dir=out_dir, protected=samples)
    progress = folder and not args.no_progress and len(samples) > 1
    iterator = samples
    if progress:
        from tqdm import tqdm

        iterator = tqdm(samples, desc=f"mmif fuse ({name})", unit="sample")
    written = []
    for sample in iterator:
        written.append(writer(_fuse(sample, method, inferer, args.device))["fused_path"])
    if not progress:
        for path in written:
            print(path)
    else:
        print(f"{len(written)} fused images written to {out_dir}")
    return 0
