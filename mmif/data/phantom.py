"""A small deterministic multimodal head phantom: the embedded default data of mmif (synthetic, no download).

Everything is derived from one anatomical label map per case (:data:`PHANTOM_LABELS`: scalp, skull, CSF with sulci,
grey matter with deep nuclei, white matter, lateral ventricles, a tumour with a necrotic core and a small cold lesion).
The anatomy is an analytic function of continuous coordinates in ``[-1, 1]^3`` (an ellipsoid head with a random shape,
random cortical folding and random texture from smooth random Fourier fields), so a 2D slice and a 3D volume of the
same case agree, and every case and slice position differs. From the label map come four contrasts:

=========  ==========================================================  ==========================================
modality   look                                                        3D values (NIfTI)
=========  ==========================================================  ==========================================
``mri``    T1-like: bright fat/scalp and white matter, dark CSF/bone,  arbitrary units, about 0..1000
           smooth bias field, fine texture
``ct``     bright bone, dark air, low soft-tissue contrast             Hounsfield units, -1000..about 1400
``pet``    FDG-like uptake: grey matter and tumour hot, necrosis and   SUV-like, 0..about 12
           lesion cold; blurred (low resolution), noisy
``spect``  perfusion-like: grey matter hot, lesion cold; blurrier      counts, 0..about 100
=========  ==========================================================  ==========================================

2D slices are written as 8-bit PNGs: MRI and CT greyscale (CT through the window ``[-40, 160]`` HU), PET and SPECT as
pseudo-colour RGB through matplotlib's ``hot`` and ``jet`` colour maps, as the Harvard atlas stores them. 3D cases are
NIfTI volumes with a 1.5 mm LAS grid (non-identity affine) shared by all modalities.

:func:`write_phantom_dataset` writes the common on-disk layouts (``docs/conventions.md``), ready for
:func:`mmif.data.build_datalist`.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter

from mmif.errors import InputError
from mmif.io import atomic_write, save_image

__all__ = [
    "PHANTOM_LABELS",
    "PHANTOM_MODALITIES",
    "CT_DISPLAY_WINDOW",
    "HeadPhantom",
    "phantom_coordinates",
    "phantom_affine",
    "render_modality",
    "make_phantom",
    "to_display",
    "write_phantom_dataset",
]

#: Label values of the anatomical map.
PHANTOM_LABELS: dict[str, int] = {
    "background": 0,
    "scalp": 1,
    "skull": 2,
    "csf": 3,
    "grey_matter": 4,
    "white_matter": 5,
    "ventricles": 6,
    "tumour": 7,
    "necrosis": 8,
    "lesion": 9,
}
#: Modalities the phantom renders.
PHANTOM_MODALITIES = ("mri", "ct", "pet", "spect")
#: The CT window (HU) used for 8-bit CT slices.
CT_DISPLAY_WINDOW = (-40.0, 160.0)

# value per label (order of PHANTOM_LABELS), in the 3D units of the module table
_TISSUE_VALUES = {
    #         bg      scalp  skull   csf   gm     wm     vent   tumour necrosis lesion
    "mri": (0.0, 800.0, 120.0, 100.0, 450.0, 700.0, 80.0, 560.0, 200.0, 300.0),
    "ct": (-1000.0, 30.0, 1200.0, 8.0, 40.0, 28.0, 8.0, 55.0, 20.0, 18.0),
    "pet": (0.0, 0.6, 0.3, 0.2, 8.0, 3.0, 0.2, 12.0, 1.0, 1.5),
    "spect": (0.0, 8.0, 5.0, 5.0, 100.0, 45.0, 5.0, 70.0, 10.0, 15.0),
}
# texture amplitude (relative), noise (units), resolution blur (fraction of the half field of view), display maximum
_RENDER = {
    "mri": dict(texture=0.06, bias=0.10, noise=12.0, blur=0.008, display=(0.0, 900.0), cmap=None),
    "ct": dict(texture=0.08, bias=0.0, noise=4.0, blur=0.008, display=CT_DISPLAY_WINDOW, cmap=None),
    "pet": dict(texture=0.15, bias=0.0, noise=0.25, blur=0.035, display=(0.0, 11.0), cmap="hot"),
    "spect": dict(texture=0.12, bias=0.0, noise=4.0, blur=0.05, display=(0.0, 95.0), cmap="jet"),
}


class _FourierField:
    """A smooth random field on ``R^3``: a sum of ``n`` cosines with random directions, frequencies and phases,
    normalised to unit variance (``frequency`` in radians per unit of the ``[-1, 1]`` cube)."""

    def __init__(self, rng: np.random.Generator, n: int, frequency: tuple[float, float]) -> None:
        direction = rng.normal(size=(n, 3))
        direction /= np.linalg.norm(direction, axis=1, keepdims=True)
        self.omega = direction * rng.uniform(*frequency, size=(n, 1))
        self.phase = rng.uniform(0, 2 * np.pi, size=n)
        self.scale = np.sqrt(2.0 / n)

    def __call__(self, coords: np.ndarray) -> np.ndarray:
        out = np.zeros(coords.shape[1:], dtype=np.float64)
        for w, p in zip(self.omega, self.phase):
            out += np.cos(w[0] * coords[0] + w[1] * coords[1] + w[2] * coords[2] + p)
        return out * self.scale


def _ellipsoid(coords: np.ndarray, centre: Sequence[float], axes: Sequence[float]) -> np.ndarray:
    return sum(((coords[i] - centre[i]) / axes[i]) ** 2 for i in range(3))


@dataclass
class HeadPhantom:
    """The random anatomy of one phantom case (all sizes in units of the ``[-1, 1]`` field of view).

    Build it with :meth:`random`; :meth:`labels` and :meth:`texture` evaluate it at any coordinates.
    """

    axes: tuple[float, float, float]
    tilt: float
    ventricle_scale: float
    tumour_centre: tuple[float, float, float]
    tumour_radius: float
    lesion_centre: tuple[float, float, float]
    lesion_radius: float
    shape_field: _FourierField
    fold_field: _FourierField
    texture_field: _FourierField
    bias_field: _FourierField

    @classmethod
    def random(cls, seed: int | Sequence[int]) -> HeadPhantom:
        """A case drawn deterministically from ``seed`` (an int or a sequence, e.g. ``(dataset_seed, case)``)."""
        rng = np.random.default_rng(seed)

        def inside_brain(z_range: tuple[float, float], max_r: float) -> tuple[float, float, float]:
            while True:
                c = (rng.uniform(-0.5, 0.5), rng.uniform(-0.6, 0.6), rng.uniform(*z_range))
                if (c[0] / 0.55) ** 2 + (c[1] / 0.7) ** 2 + (c[2] / 0.65) ** 2 < max_r**2 and abs(c[0]) > 0.12:
                    return c

        return cls(
            axes=(rng.uniform(0.68, 0.78), rng.uniform(0.84, 0.94), rng.uniform(0.80, 0.90)),
            tilt=rng.uniform(-0.15, 0.15),
            ventricle_scale=rng.uniform(0.8, 1.3),
            tumour_centre=inside_brain((-0.2, 0.45), 0.8),
            tumour_radius=rng.uniform(0.10, 0.17),
            lesion_centre=inside_brain((-0.3, 0.5), 0.85),
            lesion_radius=rng.uniform(0.05, 0.09),
            shape_field=_FourierField(rng, 6, (1.0, 2.5)),
            fold_field=_FourierField(rng, 24, (7.0, 12.0)),
            texture_field=_FourierField(rng, 32, (14.0, 28.0)),
            bias_field=_FourierField(rng, 4, (0.5, 1.5)),
        )

    def _local(self, coords: np.ndarray) -> np.ndarray:
        """Coordinates in the head frame (in-plane tilt about the z axis)."""
        c, s = np.cos(self.tilt), np.sin(self.tilt)
        return np.stack([c * coords[0] - s * coords[1], s * coords[0] + c * coords[1], coords[2]])

    def labels(self, coords: np.ndarray) -> np.ndarray:
        """The label map at ``coords`` ``(3, *spatial)`` (x right-left, y anterior-posterior, z inferior-superior).

        Returns:
            ``(*spatial)`` uint8 labels (:data:`PHANTOM_LABELS`).
        """
        L = PHANTOM_LABELS
        p = self._local(coords)
        rho = np.sqrt(_ellipsoid(p, (0, 0, 0), self.axes)) * (1.0 + 0.03 * self.shape_field(p))
        fold = self.fold_field(p)
        out = np.zeros(rho.shape, dtype=np.uint8)
        out[rho <= 1.0] = L["scalp"]
        out[rho <= 0.93] = L["skull"]
        out[rho <= 0.85] = L["csf"]
        brain = rho <= 0.80
        cortex = rho > 0.80 - (0.08 + 0.08 * (1.0 + np.tanh(fold)))
        out[brain] = L["white_matter"]
        out[brain & cortex] = L["grey_matter"]
        out[brain & (rho > 0.60) & (np.abs(fold) < 0.12)] = L["csf"]  # sulci
        for sx in (-1.0, 1.0):  # deep grey nuclei, then the lateral ventricles
            out[_ellipsoid(p, (0.2 * sx, 0.02, -0.02), (0.10, 0.15, 0.10)) <= 1.0] = L["grey_matter"]
            v = self.ventricle_scale
            out[_ellipsoid(p, (0.09 * sx * v, -0.04, 0.12), (0.06 * v, 0.28, 0.14 * v)) <= 1.0] = L["ventricles"]
        tumour = np.sqrt(_ellipsoid(p, self.tumour_centre, (self.tumour_radius,) * 3)) * (1 + 0.1 * fold / 3)
        out[tumour <= 1.0] = L["tumour"]
        out[tumour <= 0.5] = L["necrosis"]
        out[_ellipsoid(p, self.lesion_centre, (self.lesion_radius,) * 3) <= 1.0] = L["lesion"]
        out[rho > 1.0] = L["background"]
        return out

    def texture(self, coords: np.ndarray) -> np.ndarray:
        """Fine tissue texture at ``coords``, zero mean and unit variance."""
        return self.texture_field(self._local(coords))

    def bias(self, coords: np.ndarray) -> np.ndarray:
        """A smooth (MR bias-field-like) variation at ``coords``, zero mean and unit variance."""
        return self.bias_field(coords)


def phantom_coordinates(shape: Sequence[int], z: float = 0.0) -> np.ndarray:
    """Model coordinates ``(3, *shape)`` of a grid covering ``[-1, 1]`` (voxel centres).

    Args:
        shape: ``(H, W)`` for an axial slice at height ``z`` (rows anterior to posterior, columns patient right to
            left, as radiological views show it) or ``(X, Y, Z)`` for a volume whose array axes follow the LAS affine
            of :func:`phantom_affine` (x decreases, y and z increase with the index).
        z: slice height in ``[-1, 1]`` (2D only).
    """
    shape = tuple(int(s) for s in shape)
    n = max(shape)

    def axis(size: int, sign: float) -> np.ndarray:  # isotropic: the longest axis spans [-1, 1]
        return sign * (np.arange(size) + 0.5 - size / 2.0) * (2.0 / n)

    if len(shape) == 2:
        y, x = np.meshgrid(axis(shape[0], -1.0), axis(shape[1], -1.0), indexing="ij")
        return np.stack([x, y, np.full(shape, float(z))])
    if len(shape) == 3:
        return np.stack(np.meshgrid(axis(shape[0], -1.0), axis(shape[1], 1.0), axis(shape[2], 1.0), indexing="ij"))
    raise ValueError(f"phantom_coordinates: shape must have 2 or 3 dimensions, got {shape}")


def phantom_affine(shape: Sequence[int], spacing: float = 1.5) -> np.ndarray:
    """The 4x4 LAS voxel-to-world affine (mm, RAS world) of a phantom volume, centred on the origin."""
    shape = np.asarray(shape, dtype=np.float64)
    affine = np.diag([-spacing, spacing, spacing, 1.0])
    affine[:3, 3] = -affine[:3, :3] @ ((shape - 1) / 2.0)
    return affine


def render_modality(
    phantom: HeadPhantom, labels: np.ndarray, coords: np.ndarray, modality: str, rng: np.random.Generator
) -> np.ndarray:
    """One modality of a phantom case in its physical-like units (module table).

    Args:
        phantom: the case.
        labels: ``(*spatial)`` from :meth:`HeadPhantom.labels` at ``coords``.
        coords: ``(3, *spatial)`` model coordinates.
        modality: one of :data:`PHANTOM_MODALITIES`.
        rng: noise generator.

    Returns:
        ``(*spatial)`` float32.
    """
    if modality not in PHANTOM_MODALITIES:
        raise ValueError(f"render_modality: modality must be one of {PHANTOM_MODALITIES}, got {modality!r}")
    cfg = _RENDER[modality]
    values = np.asarray(_TISSUE_VALUES[modality], dtype=np.float64)[labels]
    head = labels > 0
    # texture relative to the tissue value (CT: relative to water, 0 HU), inside the head only
    img = values * (1.0 + cfg["texture"] * phantom.texture(coords) * head)
    if cfg["bias"]:
        img = img * (1.0 + cfg["bias"] * phantom.bias(coords))
    voxel = 2.0 / max(labels.shape)  # grid step of phantom_coordinates
    img = gaussian_filter(img, sigma=max(cfg["blur"] / voxel, 0.5), mode="nearest")
    img = img + rng.normal(scale=cfg["noise"], size=img.shape) * (
        np.sqrt(np.clip(img / values.max(), 0.05, None)) if modality in ("pet", "spect") else 1.0
    )
    if modality == "ct":
        img = np.where(head, img, -1000.0 + np.abs(img + 1000.0))
    else:
        img = np.abs(img)  # magnitude / counts are non-negative
    return img.astype(np.float32)


def make_phantom(
    shape: Sequence[int],
    modalities: Sequence[str] = PHANTOM_MODALITIES,
    seed: int | Sequence[int] = 0,
    z: float = 0.0,
) -> dict[str, np.ndarray]:
    """Render one case.

    Args:
        shape: ``(H, W)`` (an axial slice at height ``z``) or ``(X, Y, Z)`` (a volume).
        modalities: subset of :data:`PHANTOM_MODALITIES`.
        seed: the case seed (anatomy and noise).
        z: slice height in ``[-1, 1]`` for 2D.

    Returns:
        ``{"label": uint8 (*shape), <modality>: float32 (*shape), ...}`` in the physical-like units of the module
        table (use :func:`to_display` for ``[0, 1]``).
    """
    seed_seq = tuple(np.atleast_1d(seed).tolist())
    phantom = HeadPhantom.random(seed_seq)
    coords = phantom_coordinates(shape, z)
    labels = phantom.labels(coords)
    out: dict[str, np.ndarray] = {"label": labels}
    for i, modality in enumerate(modalities):
        noise_seed = (*seed_seq, int(round((z + 2.0) * 1000)), PHANTOM_MODALITIES.index(modality), i)
        out[modality] = render_modality(phantom, labels, coords, modality, np.random.default_rng(noise_seed))
    return out


def to_display(modality: str, image: np.ndarray) -> np.ndarray:
    """Map a rendered modality to ``[0, 1]`` with its fixed display range (CT: :data:`CT_DISPLAY_WINDOW`)."""
    lo, hi = _RENDER[modality]["display"]
    return np.clip((np.asarray(image, dtype=np.float64) - lo) / (hi - lo), 0.0, 1.0)


def _to_png_array(modality: str, image: np.ndarray) -> np.ndarray:
    """``(1, H, W)`` grey or ``(3, H, W)`` pseudo-colour uint8 for a 2D slice."""
    unit = to_display(modality, image)
    cmap = _RENDER[modality]["cmap"]
    if cmap is None:
        return np.round(unit * 255.0).astype(np.uint8)[None]
    import matplotlib

    rgb = matplotlib.colormaps[cmap](unit)[..., :3] * np.clip(unit / 0.05, 0.0, 1.0)[..., None]  # black background
    return np.moveaxis(np.round(rgb * 255.0).astype(np.uint8), -1, 0)


_README = """# mmif synthetic phantom

SYNTHETIC data written by `mmif.data.phantom.write_phantom_dataset` ({args}).
Not patient data. Every image is computed from an analytic head model (scalp, skull, CSF, grey and white matter,
ventricles, a tumour with a necrotic core, a cold lesion) with seeded random shape and texture;
MRI-, CT-, PET- and SPECT-like contrasts are derived from one label map per case.
{layout}
"""
_LAYOUT_2D = """2D layout: `{{task}}/{{train,test}}/{{modality}}/NAME.png`, NAME = `<case><3-digit slice>`;
`index.csv` lists task, split, name, case_id, slice. MRI/CT are 8-bit grey (CT window -40..160 HU);
PET/SPECT are RGB pseudo-colour (matplotlib `hot` / `jet`). The split is by case (the last cases of each task
are test)."""
_LAYOUT_3D = """3D layout: `<case>/{{mri,ct,pet,spect,label}}.nii.gz`, 1.5 mm LAS grid shared by all modalities.
Units: mri arbitrary (0..~1000), ct Hounsfield, pet SUV-like, spect counts; label = anatomical labels
(0 background, 1 scalp, 2 skull, 3 CSF, 4 grey matter, 5 white matter, 6 ventricles, 7 tumour, 8 necrosis, 9 lesion)."""
_MARKER = "# mmif synthetic phantom"


def _prepare_root(root: Path) -> None:
    if root.exists() and not root.is_dir():
        raise InputError(root, "exists and is not a folder")
    if root.is_dir() and any(root.iterdir()):
        readme = root / "README.md"
        if not (readme.is_file() and readme.read_text(errors="replace").startswith(_MARKER)):
            raise InputError(root, "folder is not empty and holds no phantom; refusing to write the phantom over it")
    root.mkdir(parents=True, exist_ok=True)


def _parse_task(task: str) -> list[str]:
    mods = [m.lower() for m in task.split("_")]
    if len(mods) < 2 or any(m not in PHANTOM_MODALITIES for m in mods) or len(set(mods)) != len(mods):
        raise ValueError(
            f"write_phantom_dataset: task {task!r} must join 2+ different names of {PHANTOM_MODALITIES} by '_'"
        )
    return mods


def write_phantom_dataset(
    root: str | os.PathLike,
    n_cases: int = 4,
    slices_per_case: int = 8,
    size: int | Sequence[int] | None = None,
    spatial_dims: int = 2,
    seed: int = 0,
    tasks: Sequence[str] = ("MRI_CT", "MRI_PET", "MRI_SPECT"),
    test_cases: int = 1,
    spacing: float = 1.5,
) -> Path:
    """Write the synthetic phantom in the common on-disk layouts.

    2D: ``ROOT/{task}/{train,test}/{MRI,CT|PET|SPECT}/<case><3-digit slice>.png`` for each task (``n_cases`` cases per
    task with their own anatomy, case ids numbered from 1 across tasks; the last ``test_cases`` cases of each task
    are test) plus ``ROOT/index.csv``. 3D: ``ROOT/case<NNN>/{mri,ct,pet,spect,label}.nii.gz``. A ``README.md`` says the
    data are synthetic. Same arguments, same files.

    Args:
        root: output folder (created; must be empty or hold an earlier phantom).
        n_cases: cases per task (2D) or cases (3D).
        slices_per_case: axial slices per case (2D), evenly spread from below the ventricles to the vertex region.
        size: ``H`` / ``(H, W)`` for 2D (default 64), ``N`` / ``(X, Y, Z)`` for 3D (default 48).
        spatial_dims: 2 or 3.
        seed: dataset seed.
        tasks: 2D tasks, modality names joined by ``_`` (e.g. ``"MRI_PET_SPECT"`` for three sources).
        test_cases: cases per task in the ``test`` split (2D).
        spacing: voxel size in mm of the 3D grid.

    Returns:
        ``root``.

    Raises:
        ValueError: bad arguments. InputError: ``root`` is a non-empty folder that does not hold a phantom.
    """
    if spatial_dims not in (2, 3):
        raise ValueError(f"write_phantom_dataset: spatial_dims must be 2 or 3, got {spatial_dims}")
    if n_cases < 1 or slices_per_case < 1:
        raise ValueError(
            f"write_phantom_dataset: n_cases and slices_per_case must be >= 1, got {n_cases}, {slices_per_case}"
        )
    if test_cases < 0 or (test_cases > 0 and test_cases >= n_cases):
        raise ValueError(f"write_phantom_dataset: test_cases must be in [0, n_cases), got {test_cases}")
    size = (64 if spatial_dims == 2 else 48) if size is None else size
    shape = tuple(int(s) for s in np.broadcast_to(np.asarray(size), (spatial_dims,)))
    if min(shape) < 8:
        raise ValueError(f"write_phantom_dataset: size must be at least 8, got {shape}")
    root = Path(root).expanduser().absolute()
    _prepare_root(root)
    args = (
        f"n_cases={n_cases}, slices_per_case={slices_per_case}, size={shape}, spatial_dims={spatial_dims}, seed={seed}"
    )
    if spatial_dims == 2:
        _write_2d(root, tasks, n_cases, slices_per_case, shape, seed, test_cases)
        layout = _LAYOUT_2D.format()
    else:
        _write_3d(root, n_cases, shape, seed, spacing)
        layout = _LAYOUT_3D.format()
    text = _README.format(args=args, layout=layout)
    atomic_write(root / "README.md", lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return root


def _write_2d(
    root: Path, tasks: Sequence[str], n_cases: int, slices: int, shape: tuple, seed: int, test_cases: int
) -> None:
    rows = []
    case_id = 0
    for task in tasks:
        mods = _parse_task(task)
        for c in range(n_cases):
            case_id += 1
            split = "test" if c >= n_cases - test_cases else "train"
            offset = np.random.default_rng((seed, case_id, 7)).uniform(-0.05, 0.05)
            heights = np.linspace(-0.30, 0.55, slices) if slices > 1 else np.array([0.12])  # 1 slice: ventricles
            for s, z in enumerate(heights + offset):
                name = f"{case_id}{s:03d}"
                images = make_phantom(shape, mods, seed=(seed, case_id), z=float(z))
                for m, folder in zip(mods, task.split("_")):
                    save_image(root / task / split / folder / f"{name}.png", _to_png_array(m, images[m]))
                rows.append((task, split, name, str(case_id), str(s)))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(("task", "split", "name", "case_id", "slice"))
    writer.writerows(rows)
    atomic_write(root / "index.csv", lambda tmp: Path(tmp).write_text(buf.getvalue(), encoding="utf-8"))


def _write_3d(root: Path, n_cases: int, shape: tuple, seed: int, spacing: float) -> None:
    affine = phantom_affine(shape, spacing)
    for c in range(1, n_cases + 1):
        images = make_phantom(shape, PHANTOM_MODALITIES, seed=(seed, c))
        for name, arr in images.items():
            save_image(root / f"case{c:03d}" / f"{name}.nii.gz", arr[None].astype(np.float32), affine=affine)
