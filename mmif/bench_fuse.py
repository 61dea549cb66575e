"""``mmif bench fuse``: seconds per pair, FLOPs and peak memory of the learned fusion beside the classical baselines.

One run times, on the same pair of sources and with the same torch thread count:

- the learned method (``dmfnet``): the Stage II :class:`~mmif.networks.fusion_model.FusionModel` built from a bundle's
  inference config (``network_def``, ``inferer``), called through the config's :class:`~mmif.inferers.FusionInferer`
  exactly as :class:`~mmif.fusion.learned.DMFNetFusion` calls it; its two parts (the frozen Stage I feature extractor
  and the fusion head) are also timed and counted alone. The bundle's trained weights are loaded when they exist and
  fit; otherwise the same architecture runs with seeded random weights (the speed does not depend on the weights) and
  the output says so. ``--preset`` swaps in another Stage I preset (a JSON with ``network_def`` and
  ``noise_scheduler``, like ``configs/stage1_unet_small.json``) and ``--timesteps`` other diffusion timesteps;
- the classical baselines of :func:`mmif.fusion.get_fusion_method` (``laplacian`` and the others).

Figures per method: wall-clock seconds (median and minimum over ``--repeats`` after ``--warmup`` runs), process CPU
seconds (all threads), the FLOPs of one fusion as counted by :class:`torch.utils.flop_counter.FlopCounterMode`
(convolutions, matrix products and attention only: element-wise work such as normalisation and activations is not
counted, so classical methods built from element-wise operations count little or nothing), and the peak memory of one
fusion: the rise of the process's resident set size high-water mark (Linux ``VmHWM`` after resetting it through
``/proc/self/clear_refs`` and returning freed heap memory with ``malloc_trim``), or, where that is unavailable, the rise
of ``resource.getrusage().ru_maxrss`` (a lifetime maximum, so it can read 0 after a bigger earlier run).

The sources are the first MRI/CT pair of ``harvard/MRI_CT/test`` when :func:`mmif.data.find_data_root` finds the real
data (resized when ``--size`` differs from its size), else a generated phantom MRI/CT slice of ``--size``².
"""

from __future__ import annotations

import os

if __name__ == "__main__":  # run as a script: torch is not loaded yet, so the OpenMP policy can still take effect
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import contextlib
import ctypes
import ctypes.util
import resource
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode

from mmif.bench import register_target, time_call

__all__ = [
    "SPEED_TARGET_SECONDS",
    "LearnedFusion",
    "fuse_pair",
    "build_learned",
    "count_flops",
    "parse_overrides",
    "peak_memory",
    "describe_unet",
    "configure_fuse",
    "run_fuse",
]

#: the speed target of the shipped model: seconds per 256² pair on this CPU with 2 threads
SPEED_TARGET_SECONDS = 0.15

_LEARNED = "dmfnet"


# --------------------------------------------------------------------------------------------------------- data
def fuse_pair(size: int = 256, seed: int = 0) -> tuple[torch.Tensor, str]:
    """One MRI/CT pair of sources ``(1, 2, size, size)`` (luminance in [0, 1]) and a description of where it came from.

    Uses the first pair of ``harvard/MRI_CT/test`` (loaded with :class:`mmif.transforms.LoadFusionSourcesd`, resized
    bilinearly when its size is not ``size``) when :func:`mmif.data.find_data_root` finds the real data, else a
    generated phantom slice (:func:`mmif.data.phantom.make_phantom`).

    Raises:
        ValueError: ``size`` is smaller than 8.
    """
    if size < 8:
        raise ValueError(f"fuse_pair: size must be >= 8, got {size}.")
    from mmif.data import find_data_root

    root = find_data_root()
    folder = None if root is None else Path(root) / "harvard" / "MRI_CT" / "test"
    if folder is not None and (folder / "MRI").is_dir():
        for mri in sorted((folder / "MRI").glob("*.png")):
            ct = folder / "CT" / mri.name
            if not ct.is_file():
                continue
            from mmif.transforms import LoadFusionSourcesd

            sample = LoadFusionSourcesd(keys="image")({"image": [str(mri), str(ct)], "modalities": ["MRI", "CT"]})
            image = torch.as_tensor(sample["image"]).float()[None]
            native = "x".join(str(s) for s in image.shape[2:])
            what = f"harvard MRI_CT/test/{mri.name} ({native})"
            if tuple(image.shape[2:]) != (size, size):
                image = F.interpolate(image, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
                what += f" resized to {size}x{size}"
            return image.clamp(0.0, 1.0).contiguous(), what
    from mmif.data.phantom import make_phantom, to_display

    case = make_phantom((size, size), modalities=("mri", "ct"), seed=seed)
    image = torch.stack([torch.as_tensor(to_display(m, case[m])) for m in ("mri", "ct")])[None].float()
    return image, f"phantom MRI/CT slice {size}x{size} (no real data found)"


# ------------------------------------------------------------------------------------------------ learned model
class _AutocastExtractor(torch.nn.Module):
    """Runs a feature extractor under CPU bfloat16 autocast and returns float32 features (a study knob)."""

    def __init__(self, extractor: torch.nn.Module) -> None:
        super().__init__()
        self.inner = extractor
        for name in ("feature_channels", "feature_strides", "timesteps", "size_multiple"):
            if hasattr(extractor, name):
                setattr(self, name, getattr(extractor, name))

    def forward(self, image: torch.Tensor) -> list[torch.Tensor]:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            features = self.inner(image)
        return [f.float() for f in features]


@dataclass
class LearnedFusion:
    """The learned fusion model of a bundle, ready to time.

    Attributes:
        model: the :class:`~mmif.networks.fusion_model.FusionModel` (eval mode, CPU).
        inferer: the config's inferer (a :class:`~mmif.inferers.FusionInferer`).
        weights: how the weights were set (trained files loaded, or random and why).
        unet: a one-line description of the Stage I UNet (:func:`describe_unet`).
        timesteps: the diffusion timesteps of the extractor.
        knobs: the study knobs applied (``channels_last``, ``bf16 extractor``), empty for the model as
            :class:`~mmif.fusion.learned.DMFNetFusion` runs it.
        memory_format: the memory format of the weights as the config sets it (``memory_format``), e.g.
            ``"channels_last"``; ``"contiguous"`` when the config sets none.
    """

    model: torch.nn.Module
    inferer: Any
    weights: str
    unet: str
    timesteps: tuple[int, ...] = field(default_factory=tuple)
    knobs: tuple[str, ...] = field(default_factory=tuple)
    memory_format: str = "contiguous"

    def __call__(self, image: torch.Tensor) -> torch.Tensor:
        """Fuse ``(B, M, *spatial)`` -> ``(B, 1, *spatial)`` the way :class:`~mmif.fusion.learned.DMFNetFusion` does."""
        with torch.no_grad():
            return self.inferer(image, self.model)

    def padded(self, image: torch.Tensor) -> torch.Tensor:
        """``image`` padded to the UNet's size multiple, as the inferer feeds it to the model."""
        from mmif.inferers import pad_to_multiple

        return pad_to_multiple(image, getattr(self.model.extractor, "size_multiple", 1))[0]

    def extract(self, image: torch.Tensor) -> list[torch.Tensor]:
        """The extractor part alone on a padded input."""
        return self.model.extract(image)

    def head(self, features: Sequence[torch.Tensor], image: torch.Tensor) -> torch.Tensor:
        """The fusion-head part alone (with the source images when the model passes them)."""
        with torch.no_grad():
            if self.model.pass_image:
                return self.model.head(features, image)
            return self.model.head(features)

    def apply_knobs(self, channels_last: bool = False, bf16: bool = False) -> LearnedFusion:
        """Study knobs (not used by ``mmif fuse``): channels-last weights (convolutions then run channels-last; a no-op
        when the config already asks for it, as the 2D bundle's does) and/or CPU bfloat16 autocast for the extractor
        only (the head stays float32). Returns ``self``."""
        knobs = list(self.knobs)
        if channels_last and self.memory_format != "channels_last":
            self.model.to(memory_format=torch.channels_last)
            knobs.append("channels_last")
        if bf16:
            self.model.extractor = _AutocastExtractor(self.model.extractor)
            knobs.append("bf16 extractor")
        self.knobs = tuple(knobs)
        return self


def describe_unet(unet: torch.nn.Module) -> str:
    """``"channels (16, 32, 64, 64), 1 res block(s), attention (F, F, F, T), 0.42 M params"`` for a MONAI
    :class:`~monai.networks.nets.DiffusionModelUNet` (the attributes it keeps), else the class name."""
    channels = getattr(unet, "block_out_channels", None)
    if channels is None:
        return type(unet).__name__
    attention = "".join("T" if a else "F" for a in getattr(unet, "attention_levels", ()))
    res = getattr(unet, "num_res_blocks", ("?",))
    params = sum(p.numel() for p in unet.parameters()) / 1e6
    return f"channels {tuple(channels)}, res blocks {tuple(res)}, attention {attention}, {params:.2f} M params"


def build_learned(
    bundle: str | os.PathLike | None = None,
    config_file: str | os.PathLike = "configs/inference.json",
    preset: str | os.PathLike | None = None,
    timesteps: Sequence[int] | None = None,
    overrides: dict[str, Any] | None = None,
    load_weights: bool = True,
    seed: int = 0,
) -> LearnedFusion:
    """Build the learned fusion model of a bundle's inference config, optionally with another Stage I preset.

    Args:
        bundle: the bundle folder (default: :func:`mmif.fusion.learned.default_bundle_dir`).
        config_file: the inference config, relative to ``bundle`` or absolute.
        preset: a Stage I preset JSON (``network_def`` and ``noise_scheduler``) replacing the config's ``unet_def``
            and ``scheduler_def``; ``None`` keeps the config's.
        timesteps: diffusion timesteps replacing the config's ``timesteps``; ``None`` keeps them.
        overrides: further config entries to set (``{"head_def#hidden_channels": 8}``).
        load_weights: load the bundle's trained weights when they exist and fit the architecture.
        seed: seed of the random weights used when trained weights are not loaded.

    Returns:
        the model with its inferer and a note on its weights.

    Raises:
        InputError: the config or the preset file is missing or unreadable.
    """
    from monai.bundle import ConfigParser

    from mmif.errors import InputError
    from mmif.fusion.learned import _config_root, _parser, _weight_paths, default_bundle_dir, memory_format
    from mmif.networks.feature_extractor import load_stage1_weights

    bundle_dir = (Path(bundle) if bundle else default_bundle_dir()).resolve()
    values: dict[str, Any] = {"device": "$torch.device('cpu')"}
    if preset is not None:
        preset = Path(preset)
        if not preset.is_file():
            raise InputError(preset, "Stage I preset not found")
        try:
            content = ConfigParser.load_config_file(str(preset))
        except Exception as e:  # JSON/YAML errors come in many types
            raise InputError(preset, f"cannot read the Stage I preset ({type(e).__name__}: {e})") from e
        missing = [k for k in ("network_def", "noise_scheduler") if k not in content]
        if missing:
            raise InputError(preset, f"a Stage I preset needs network_def and noise_scheduler; missing {missing}")
        values["unet_def"] = content["network_def"]
        values["scheduler_def"] = content["noise_scheduler"]
    if timesteps is not None:
        values["timesteps"] = [int(t) for t in timesteps]
    values.update(overrides or {})
    parser = _parser(bundle_dir, config_file, values)
    with contextlib.chdir(_config_root(bundle_dir)), torch.random.fork_rng():
        torch.manual_seed(seed)
        model = parser.get_parsed_content("network_def")
        inferer = parser.get_parsed_content("inferer")
        stage1_path, head_path = _weight_paths(parser)
    weights = "random weights of the same architecture (speed does not depend on the weights)"
    if not load_weights:
        weights += ": loading not asked for"
    elif not (stage1_path.is_file() and head_path.is_file()):
        weights += f": no trained weights in {head_path.parent}"
    else:
        state = {k: v.clone() for k, v in model.state_dict().items()}
        try:
            load_stage1_weights(model.extractor.unet, str(stage1_path))
            model.load_checkpoint(str(head_path))
            weights = f"trained weights {stage1_path.name} + {head_path.name}"
        except (InputError, ValueError, RuntimeError, KeyError):
            model.load_state_dict(state)
            weights += ": the bundle's trained weights do not fit this architecture"
    fmt = memory_format(parser)
    model = model.eval().to(memory_format=fmt)
    return LearnedFusion(
        model=model,
        inferer=inferer,
        weights=weights,
        unet=describe_unet(model.extractor.unet),
        timesteps=tuple(getattr(model.extractor, "timesteps", ())),
        memory_format=str(fmt).removeprefix("torch.") if fmt is not None else "contiguous",
    )


# ------------------------------------------------------------------------------------------------------ figures
def count_flops(fn: Callable[[], object]) -> int:
    """FLOPs of one call of ``fn`` counted by :class:`torch.utils.flop_counter.FlopCounterMode` (convolutions,
    matrix products and attention; a multiply-add counts 2)."""
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def _status_bytes(key: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def _malloc_trim() -> None:
    name = ctypes.util.find_library("c")
    if not name:
        return
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError):
        pass


def peak_memory(fn: Callable[[], object]) -> tuple[int | None, str]:
    """Rise of the process's peak resident memory during one call of ``fn``, in bytes, and how it was measured.

    On Linux: freed heap memory is returned to the system (``malloc_trim``), the high-water mark is reset to the
    current resident size (``/proc/self/clear_refs``, value 5) and the result is ``VmHWM`` after the call minus
    ``VmRSS`` before it. Elsewhere: the rise of ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` (a lifetime maximum, so
    it reads 0 when an earlier call went higher). ``None`` when neither is available.
    """
    _malloc_trim()
    before = _status_bytes("VmRSS")
    reset = False
    if before is not None:
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")
            reset = True
        except OSError:
            reset = False
    if reset:
        before = _status_bytes("VmRSS")
        fn()
        after = _status_bytes("VmHWM")
        if before is not None and after is not None:
            return max(0, after - before), "peak RSS rise (Linux VmHWM reset before the call)"
    scale = 1 if os.uname().sysname == "Darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    fn()
    end = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return max(0, end - start) * scale, "rise of ru_maxrss (lifetime peak: 0 when an earlier call went higher)"


# -------------------------------------------------------------------------------------------------------- table
@dataclass
class _Row:
    name: str
    median: float
    best: float
    cpu: float
    flops: int | None
    memory: int | None

    def format(self) -> str:
        flops = "n/a" if not self.flops else f"{self.flops / 1e9:.4g}"
        memory = "n/a" if self.memory is None else f"{self.memory / 2**20:.1f}"
        return (
            f"{self.name:<14} {self.median:>9.4f} {self.best:>9.4f} {self.cpu:>9.4f} {flops:>9} {memory:>9}"
        )


_HEADER = f"{'method':<14} {'median s':>9} {'min s':>9} {'cpu s':>9} {'GFLOP':>9} {'peak MB':>9}"


def _measure(name: str, fn: Callable[[], object], repeats: int, warmup: int, flops: bool = True) -> _Row:
    count = count_flops(fn) if flops else None
    memory, _ = peak_memory(fn)
    median, best, cpu = time_call(fn, repeats, warmup)
    return _Row(name, median, best, cpu, count, memory)


def parse_overrides(items: Sequence[str] | None) -> dict[str, Any]:
    """``["head_def#hidden_channels=8", "roi_size=null"]`` -> ``{"head_def#hidden_channels": 8, "roi_size": None}``.

    Values are JSON; a value that is not JSON is kept as a string.

    Raises:
        ValueError: an item without ``=`` or with an empty key.
    """
    import json

    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = str(item).partition("=")
        if not sep or not key.strip():
            raise ValueError(f"parse_overrides: expected KEY=VALUE, got {item!r}.")
        try:
            out[key.strip()] = json.loads(value)
        except json.JSONDecodeError:
            out[key.strip()] = value
    return out


def _baseline_names(methods: str | None) -> list[str]:
    from mmif.fusion import available_fusion_methods

    if methods:
        return [m.strip() for m in methods.split(",") if m.strip()]
    return [m for m in available_fusion_methods() if m != _LEARNED]


def configure_fuse(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> None:
    """Add the ``fuse`` target's options (``--preset``, ``--config``, ``--bundle``, ``--timesteps``, ``--override``,
    ``--channels-last``, ``--bf16``, ``--methods``, ``--no-learned``) to ``parser``."""
    parser.add_argument("--preset", metavar="JSON", default=None,
                        help="fuse: Stage I preset (network_def + noise_scheduler) replacing the bundle's, e.g. "
                        "configs/stage1_unet_fast.json")
    parser.add_argument("--config", metavar="JSON", default="configs/inference.json",
                        help="fuse: the bundle inference config (relative to --bundle or absolute)")
    parser.add_argument("--bundle", metavar="DIR", default=None, help="fuse: bundle folder (default: the 2D bundle)")
    parser.add_argument("--timesteps", metavar="T", type=int, nargs="+", default=None,
                        help="fuse: diffusion timesteps replacing the config's (e.g. --timesteps 10)")
    parser.add_argument("--override", metavar="KEY=JSON", action="append", default=None,
                        help="fuse: set a bundle config entry, e.g. --override head_def#hidden_channels=8 (repeatable)")
    parser.add_argument("--channels-last", action="store_true",
                        help="fuse: study knob, run the learned model channels-last (mmif fuse does not)")
    parser.add_argument("--bf16", action="store_true",
                        help="fuse: study knob, run the extractor under bfloat16 autocast (mmif fuse does not)")
    parser.add_argument("--methods", metavar="LIST", default=None,
                        help="fuse: comma-separated baselines to time beside the learned model (default: all)")
    parser.add_argument("--no-learned", dest="learned", action="store_false",
                        help="fuse: time the baselines only")


def run_fuse(args: argparse.Namespace) -> None:
    """Print the ``fuse`` table: the learned model (whole, extractor, head) and the baselines on one pair."""
    from mmif.fusion import get_fusion_method

    repeats, warmup = int(getattr(args, "repeats", 20)), int(getattr(args, "warmup", 2))
    size = int(getattr(args, "size", 256) or 256)
    image, what = fuse_pair(size)
    threads = torch.get_num_threads()
    print(f"fuse on {what}; torch {torch.__version__}, {threads} thread(s), "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}")
    print(f"wall seconds per pair: median and min of {repeats} runs after {warmup} warm-up; cpu = process time "
          "(all threads)")
    rows: list[_Row] = []
    learned = None
    if getattr(args, "learned", True):
        from mmif.errors import InputError

        try:
            overrides = parse_overrides(getattr(args, "override", None))
        except ValueError as e:
            raise InputError("--override", str(e)) from e
        learned = build_learned(
            bundle=getattr(args, "bundle", None),
            config_file=getattr(args, "config", None) or "configs/inference.json",
            preset=getattr(args, "preset", None),
            timesteps=getattr(args, "timesteps", None),
            overrides=overrides,
        ).apply_knobs(bool(getattr(args, "channels_last", False)), bool(getattr(args, "bf16", False)))
        print(f"{_LEARNED}: Stage I UNet {learned.unet}; timesteps {learned.timesteps}; "
              f"preset {getattr(args, 'preset', None) or 'of the bundle config'}; "
              f"memory format {learned.memory_format}")
        print(f"{_LEARNED}: {learned.weights}")
        if learned.knobs:
            print(f"{_LEARNED}: study knobs {', '.join(learned.knobs)} (not what mmif fuse runs)")
        padded = learned.padded(image)
        features = learned.extract(padded)
        rows.append(_measure(_LEARNED, lambda: learned(image), repeats, warmup))
        rows.append(_measure("  extractor", lambda: learned.extract(padded), repeats, warmup))
        rows.append(_measure("  head", lambda: learned.head(features, padded), repeats, warmup))
    for name in _baseline_names(getattr(args, "methods", None)):
        method = get_fusion_method(name).eval()

        def call(m=method):
            with torch.no_grad():
                return m(image)

        rows.append(_measure(name, call, repeats, warmup))
    _, how = peak_memory(lambda: None)
    print(_HEADER)
    for row in rows:
        print(row.format())
    print(f"GFLOP: FlopCounterMode (conv/matmul/attention only); peak MB: {how}")
    if learned is not None:
        by_name = {r.name: r for r in rows}
        ours = by_name[_LEARNED]
        line = f"{_LEARNED}: {ours.median:.3f} s median, {ours.best:.3f} s min per {size}x{size} pair"
        if size == 256:
            verdict = "meets" if ours.median <= SPEED_TARGET_SECONDS else "misses"
            line += f" -> {verdict} the {SPEED_TARGET_SECONDS} s target (2 threads) at {threads} thread(s)"
        else:
            line += f" (the {SPEED_TARGET_SECONDS} s target is for 256x256)"
        if "laplacian" in by_name and by_name["laplacian"].median > 0:
            line += f"; {ours.median / by_name['laplacian'].median:.1f}x laplacian"
        print(line)


register_target("fuse", run_fuse, configure_fuse)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m mmif.bench_fuse [options]`` = ``mmif bench fuse [options]`` with every ``fuse`` option."""
    import sys

    from mmif.bench import add_target_options
    from mmif.commands import bench as command
    from mmif.errors import InputError

    parser = argparse.ArgumentParser(prog="python -m mmif.bench_fuse", description=run_fuse.__doc__)
    command.configure(parser)
    add_target_options(parser)
    args = parser.parse_args(["fuse", *(sys.argv[1:] if argv is None else argv)])
    try:
        return command.main(args)
    except InputError as e:
        print(f"{parser.prog}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
