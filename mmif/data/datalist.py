"""Build MONAI datalists (``{"training": [...], "validation": [...], "test": [...]}``) from folders of fusion data.

Two layouts are read (``docs/conventions.md``):

- **2D, the common MMIF layout:** ``ROOT/{task}/[{split}/]{MRI, CT|PET|SPECT}/NAME.png|jpg|tif``. A sample is the same
  ``NAME`` in every modality folder of a task (2 or more folders, e.g. ``MRI/PET/SPECT`` gives 3 sources). ``ROOT`` may
  also be a single task folder. Case ids come from ``ROOT/index.csv`` when present (columns
  ``task,split,name,case_id,slice``), otherwise from the Harvard naming ``<case><3-digit slice>``, otherwise the NAME.
- **3D cases:** ``ROOT/<case>/<modality>.nii[.gz]`` (MetaImage/NRRD too) and ``ROOT/<case>/<modality>/`` holding a
  DICOM series. The modalities are chosen by name; a case lacking one is skipped and reported with the reason.

Every entry is ``{"image": [abs paths, MR first], "modalities", "task", "name", "case_id", "spatial_dims"}``.

Splits: ``split_by="upstream"`` keeps ``train``/``test`` (``val``) split folders and carves a validation fraction out of
the training cases **by case id**; tasks without split folders are split by case. ``split_by="case"`` ignores the
folders and splits every task by case id with the given fractions. A case id keeps one split across tasks, so no
subject is in two splits anywhere. Both are deterministic for a seed.

Typical use::

    datalist, problems = build_datalist("/data/harvard", split_by="case", seed=0)
    write_datalist(datalist, "datalist.json")
"""

from __future__ import annotations

import csv
import json
import os
import re
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np

from mmif.data.validation import Problem, order_modalities, source_kind, validate_samples
from mmif.errors import InputError
from mmif.io import RASTER_SUFFIXES, VOLUME_SUFFIXES, atomic_write, image_suffix

__all__ = [
    "DATALIST_KEYS",
    "SPLIT_FOLDERS",
    "FoundSample",
    "detect_layout",
    "case_id_from_name",
    "find_pairs_2d",
    "find_cases_3d",
    "split_samples",
    "build_datalist",
    "write_datalist",
    "load_datalist",
    "format_summary",
]

#: The split keys of a datalist, in order.
DATALIST_KEYS = ("training", "validation", "test")
#: Upstream split folder names (lower-case) -> datalist key.
SPLIT_FOLDERS = {
    "train": "training",
    "training": "training",
    "val": "validation",
    "valid": "validation",
    "validation": "validation",
    "test": "test",
    "testing": "test",
}
_IGNORED_FILES = {"thumbs.db", "desktop.ini"}
_LABEL_WORDS = ("seg", "label", "mask")


class FoundSample(NamedTuple):
    """A datalist entry found in a folder, with the upstream split folder it came from (``None`` when none)."""

    entry: dict
    split: str | None


class _Reporter:
    """Collects problems (``skip_bad``) or raises the first one."""

    def __init__(self, skip_bad: bool) -> None:
        self.skip_bad = skip_bad
        self.problems: list[Problem] = []

    def __call__(self, path: str | os.PathLike, problem: str) -> None:
        if not self.skip_bad:
            raise InputError(path, problem)
        self.problems.append(Problem(os.fspath(path), problem))


def _natural_key(text: str) -> tuple:
    return tuple((0, int(t), "") if t.isdigit() else (1, 0, t.lower()) for t in re.split(r"(\d+)", text) if t)


def _visible(folder: Path) -> list[Path]:
    return sorted((p for p in folder.iterdir() if not p.name.startswith(".")), key=lambda p: _natural_key(p.name))


def _dirs(folder: Path) -> list[Path]:
    return [p for p in _visible(folder) if p.is_dir()]


def _walk(root: Path, max_depth: int) -> Iterator[tuple[int, Path]]:
    stack = [(0, root)]
    while stack:
        depth, folder = stack.pop()
        for p in _visible(folder):
            yield depth + 1, p
            if p.is_dir() and depth + 1 < max_depth:
                stack.append((depth + 1, p))


def _require_folder(root: str | os.PathLike) -> Path:
    root = Path(root).expanduser().absolute()
    if not root.exists():
        raise InputError(root, "folder not found")
    if not root.is_dir():
        raise InputError(root, "is not a folder")
    return root


def detect_layout(root: str | os.PathLike) -> str:
    """``"3d"`` when ``root`` holds volumes (``<case>/<modality>.nii[.gz]`` or DICOM series folders), ``"2d"`` when
    it holds raster images in the common layout.

    Raises:
        InputError: the folder is missing, or holds neither.
    """
    root = _require_folder(root)
    found_raster = found_dicom = False
    for depth, p in _walk(root, max_depth=5):
        if not p.is_file():
            continue
        suffix = image_suffix(p)
        if suffix in VOLUME_SUFFIXES and depth <= 2:
            return "3d"
        found_raster |= suffix in RASTER_SUFFIXES
        found_dicom |= depth == 3 and suffix not in RASTER_SUFFIXES  # ROOT/<case>/<modality>/<DICOM file>
    if found_raster:
        return "2d"
    if found_dicom:
        return "3d"
    raise InputError(
        root,
        "found no 2D images (ROOT/{task}/[{split}/]{MRI,CT|PET|SPECT}/NAME.png) "
        "and no 3D cases (ROOT/<case>/<modality>.nii.gz or DICOM series folders)",
    )


def case_id_from_name(name: str) -> str:
    """The case id of a 2D sample NAME by the Harvard naming ``<case><3-digit slice>``: the leading digits minus
    their last three (``"20005"`` -> ``"20"``), or NAME itself when it does not start with at least four digits."""
    m = re.match(r"\d+", name)
    if m and len(m.group(0)) > 3:
        return str(int(m.group(0)[:-3]))
    return name


def _read_index(root: Path) -> dict[tuple, str]:
    path = root / "index.csv"
    if not path.is_file():
        return {}
    index: dict[tuple, str] = {}
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            missing = {"task", "name", "case_id"} - set(reader.fieldnames or ())
            if missing:
                raise InputError(path, f"missing column(s) {sorted(missing)} (expected task,split,name,case_id,slice)")
            for row in reader:
                task, name, case = row["task"], row["name"], row["case_id"]
                index[(task, row.get("split") or "", name)] = case
                index.setdefault((task, name), case)
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise InputError(path, f"cannot read ({type(e).__name__}: {e})") from e
    return index


def _holds_images(folder: Path) -> bool:
    return any(p.is_file() and image_suffix(p) in RASTER_SUFFIXES for p in _visible(folder))


def _is_task_folder(folder: Path) -> bool:
    """Whether ``folder`` holds modality folders, directly or inside split folders."""
    subdirs = _dirs(folder)
    if any(d.name.lower() in SPLIT_FOLDERS and any(_holds_images(m) for m in _dirs(d)) for d in subdirs):
        return True
    return sum(_holds_images(d) for d in subdirs) >= 2


def _task_folders(root: Path) -> list[Path]:
    if _is_task_folder(root):
        return [root]
    return [d for d in _dirs(root) if "_" in d.name or _is_task_folder(d)]


def _modality_order(task: str, folders: list[Path]) -> list[Path]:
    """MR folders first, then CT/other, then PET/SPECT; inside a group the order of the task name, then the name."""
    tokens = [t for t in re.split(r"[_\-+]", task.lower()) if t]
    rank = {"mr": 0, "other": 1, "functional": 2}

    def key(d: Path) -> tuple:
        name = d.name.lower()
        return (rank[source_kind(d.name)], tokens.index(name) if name in tokens else len(tokens), _natural_key(d.name))

    return sorted(folders, key=key)


def _scan_modality_folder(folder: Path, report: _Reporter) -> dict[str, Path] | None:
    files: dict[str, Path] = {}
    for p in _visible(folder):
        if p.is_dir():
            report(p, "unexpected folder inside a modality folder (expected only images NAME.png|jpg|tif)")
            continue
        if p.name.lower() in _IGNORED_FILES:
            continue
        if image_suffix(p) not in RASTER_SUFFIXES:
            report(p, f"not a 2D image (expected {', '.join(RASTER_SUFFIXES)})")
            continue
        stem = p.name[: -len(image_suffix(p))]
        if stem in files:
            report(p, f"two images named {stem!r} in one folder (also {files[stem].name})")
            continue
        files[stem] = p
    if not files:
        report(folder, f"empty folder: no images ({', '.join(RASTER_SUFFIXES)})")
        return None
    return files


def _scan_task(
    task_dir: Path, index: Mapping[tuple, str], modalities: Sequence[str] | None, report: _Reporter
) -> list[FoundSample]:
    task = task_dir.name
    subdirs = _dirs(task_dir)
    if not subdirs:
        report(task_dir, "empty folder: no modality or split folders")
        return []
    split_dirs = [d for d in subdirs if d.name.lower() in SPLIT_FOLDERS]
    others = [d for d in subdirs if d.name.lower() not in SPLIT_FOLDERS]
    if split_dirs and others:
        raise InputError(
            task_dir,
            f"mixes split folders ({', '.join(d.name for d in split_dirs)}) with other folders "
            f"({', '.join(d.name for d in others)}); expected {task}/[split/]<modality>/NAME",
        )
    groups = [(d.name, d) for d in split_dirs] if split_dirs else [(None, task_dir)]
    samples: list[FoundSample] = []
    for split_folder, group_dir in groups:
        mod_dirs = _modality_order(task, _dirs(group_dir))
        if modalities:
            wanted = [m.lower() for m in modalities]
            have = {d.name.lower(): d for d in mod_dirs}
            missing = [m for m in modalities if m.lower() not in have]
            if missing:  # another task (e.g. MRI_PET when MRI/CT is asked for): skipped, not an error
                report.problems.append(Problem(str(group_dir), f"has no {', '.join(missing)} folder; skipped"))
                continue
            mod_dirs = _modality_order(task, [have[m] for m in wanted])
        if len(mod_dirs) < 2:
            found = ", ".join(d.name for d in mod_dirs) or "none"
            report(group_dir, f"needs at least two modality folders (e.g. MRI and CT), found: {found}")
            continue
        files = {d.name: _scan_modality_folder(d, report) for d in mod_dirs}
        if any(v is None for v in files.values()):
            continue
        names = sorted(set().union(*(f.keys() for f in files.values())), key=_natural_key)
        for name in names:
            missing_in = [d for d in mod_dirs if name not in files[d.name]]
            if missing_in:
                present = next(files[d.name][name] for d in mod_dirs if name in files[d.name])
                where = ", ".join(str(d) for d in missing_in)
                report(present, f"has no partner {name}.* in {where}")
                continue
            case_id = index.get((task, split_folder or "", name)) or index.get((task, name)) or case_id_from_name(name)
            entry = {
                "image": [str(files[d.name][name]) for d in mod_dirs],
                "modalities": [d.name for d in mod_dirs],
                "task": task,
                "name": name,
                "case_id": str(case_id),
                "spatial_dims": 2,
            }
            samples.append(FoundSample(entry, SPLIT_FOLDERS[split_folder.lower()] if split_folder else None))
    return samples


def find_pairs_2d(
    root: str | os.PathLike,
    tasks: Sequence[str] | None = None,
    modalities: Sequence[str] | None = None,
    skip_bad: bool = False,
) -> tuple[list[FoundSample], list[Problem]]:
    """Find the fusion samples of a 2D folder in the common layout (pairing only; no file is read).

    Args:
        root: ``ROOT`` of ``ROOT/{task}/[{split}/]{MRI, CT|PET|SPECT}/NAME.ext``, or one task folder.
        tasks: task folder names to keep (default: all). Task folders are sub-folders whose name contains an
            underscore or that hold modality folders.
        modalities: modality folder names to use (default: all folders of each task); e.g. ``["MRI", "SPECT"]``
            of an ``MRI_PET_SPECT`` task.
        skip_bad: report unpaired/misplaced files and empty folders instead of raising.

    Returns:
        ``(samples, problems)``.

    Raises:
        InputError: a missing or empty root, an unknown task, or (unless ``skip_bad``) the first pairing problem.
    """
    root = _require_folder(root)
    index = _read_index(root)
    task_dirs = _task_folders(root)
    if not task_dirs:
        raise InputError(root, "no task folders found (expected ROOT/{task}/[{split}/]{MRI,CT|PET|SPECT}/NAME.png)")
    if tasks:
        by_name = {d.name.lower(): d for d in task_dirs}
        unknown = [t for t in tasks if t.lower() not in by_name]
        if unknown:
            found = ", ".join(d.name for d in task_dirs)
            raise InputError(root, f"no task folder {', '.join(unknown)} (found: {found})")
        task_dirs = [by_name[t.lower()] for t in tasks]
    report = _Reporter(skip_bad)
    samples: list[FoundSample] = []
    seen: dict[tuple[str, str], str] = {}
    for task_dir in task_dirs:
        for s in _scan_task(task_dir, index, modalities, report):
            key = (s.entry["task"], s.entry["name"])
            if key in seen:  # one NAME in two split folders of a task: the outputs of the two would collide
                report(s.entry["image"][0], f"the same name is also in {seen[key]}")
                continue
            seen[key] = s.entry["image"][0]
            samples.append(s)
    if not samples:
        count = f" ({len(report.problems)} problems)" if report.problems else ""
        raise InputError(root, f"no complete samples found{count}")
    return samples, report.problems


def _case_sources(case_dir: Path, report: _Reporter) -> dict[str, Path]:
    """Modality (lower-case) -> file or DICOM folder of one case."""
    sources: dict[str, Path] = {}
    for p in _visible(case_dir):
        suffix = image_suffix(p)
        if p.is_file() and suffix in VOLUME_SUFFIXES:
            modality = p.name[: -len(suffix)]
        elif p.is_dir():
            modality = p.name
        else:
            continue  # licences, notes, ...
        if modality.lower() in sources:
            report(p, f"two sources for modality {modality!r} (also {sources[modality.lower()].name})")
            continue
        sources[modality.lower()] = p
    return sources


def find_cases_3d(
    root: str | os.PathLike,
    modalities: Sequence[str] | None = None,
    skip_bad: bool = False,
) -> tuple[list[FoundSample], list[Problem]]:
    """Find the fusion samples of a folder of 3D cases (no file is read, except folder listings).

    Args:
        root: ``ROOT`` of ``ROOT/<case>/<modality>.nii[.gz]`` or ``ROOT/<case>/<modality>/`` (DICOM series); a folder
            holding volumes directly is one case.
        modalities: the modality names (file stems, case-insensitive), e.g. ``["t1", "pet", "spect"]``; they are
            ordered MR first, then CT/other, then PET/SPECT. Default: the modalities every case has, without
            label-like names (``seg``, ``label``, ``mask``).
        skip_bad: report duplicate sources and empty DICOM folders instead of raising. Cases lacking a modality are
            always skipped and reported (they are not errors).

    Returns:
        ``(samples, problems)``; ``task`` is the upper-case modalities joined by ``_`` (``T1_PET_SPECT``),
        ``name`` and ``case_id`` are the case folder name. ``split`` is ``None``.

    Raises:
        InputError: a missing/empty root, fewer than two modalities, or no complete case.
    """
    root = _require_folder(root)
    report = _Reporter(skip_bad)
    direct = [p for p in _visible(root) if p.is_file() and image_suffix(p) in VOLUME_SUFFIXES]
    case_dirs = [root] if direct else _dirs(root)
    if not case_dirs:
        raise InputError(root, "empty folder: no case folders (expected ROOT/<case>/<modality>.nii.gz)")
    inventory = {d: _case_sources(d, report) for d in case_dirs}
    if modalities is None:
        sets = [set(s) for s in inventory.values() if s]
        common = set.intersection(*sets) if sets else set()
        common = {m for m in common if not any(w in m for w in _LABEL_WORDS)}
        if len(common) < 2:
            seen = sorted(set().union(*sets)) if sets else []
            raise InputError(
                root,
                f"the cases share fewer than two image modalities ({', '.join(sorted(common)) or 'none'}); choose them "
                f"with modalities=[...] / --modalities (found: {', '.join(seen) or 'none'})",
            )
        modalities = sorted(common, key=_natural_key)
    modalities = order_modalities(modalities)
    if len(modalities) < 2 or len({m.lower() for m in modalities}) != len(modalities):
        raise InputError(root, f"needs at least two different modalities, got {list(modalities)}")
    task = "_".join(m.upper() for m in modalities)
    samples: list[FoundSample] = []
    for case_dir, sources in inventory.items():
        missing = [m for m in modalities if m.lower() not in sources]
        if missing:
            has = ", ".join(sorted(sources)) or "nothing"
            report.problems.append(Problem(str(case_dir), f"lacks {', '.join(missing)} (has: {has}); case skipped"))
            continue
        paths = [sources[m.lower()] for m in modalities]
        empty = [p for p in paths if p.is_dir() and not _visible(p)]
        if empty:
            report(empty[0], "empty folder (expected a DICOM series)")
            continue
        entry = {
            "image": [str(p) for p in paths],
            "modalities": list(modalities),
            "task": task,
            "name": case_dir.name,
            "case_id": case_dir.name,
            "spatial_dims": 3,
        }
        samples.append(FoundSample(entry, None))
    if not samples:
        reasons = "; ".join(str(p) for p in report.problems[:3])
        raise InputError(root, f"no case has all of {', '.join(modalities)}" + (f" ({reasons})" if reasons else ""))
    return samples, report.problems


def _n_cases(fraction: float, n: int) -> int:
    if fraction <= 0 or n < 2:
        return 0
    return max(1, int(np.floor(fraction * n + 0.5)))


def _assign_cases(
    cases: Sequence[str], fractions: Mapping[str, float], assigned: dict[str, str], rng: np.random.Generator
) -> None:
    """Assign the unassigned ``cases`` to splits so that each split gets about its fraction of all ``cases``."""
    n = len(cases)
    targets = {split: _n_cases(f, n) for split, f in fractions.items()}
    for split in ("validation", "test"):  # keep at least one training case
        while sum(targets.values()) > max(n - 1, 0) and targets.get(split, 0) > 0:
            targets[split] -= 1
    counts = defaultdict(int)
    for c in cases:
        if c in assigned:
            counts[assigned[c]] += 1
    free = [c for c in cases if c not in assigned]
    for i in rng.permutation(len(free)):
        case = free[int(i)]
        split = next((s for s in ("test", "validation") if counts[s] < targets.get(s, 0)), "training")
        assigned[case] = split
        counts[split] += 1


def split_samples(
    samples: Sequence[FoundSample],
    split_by: str = "upstream",
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    case_splits: Mapping[str, str] | None = None,
) -> dict[str, list[dict]]:
    """Split samples into ``training`` / ``validation`` / ``test`` by case id.

    Args:
        samples: from :func:`find_pairs_2d` / :func:`find_cases_3d`.
        split_by: ``"upstream"``: keep the split folders; ``validation`` gets ``val_fraction`` of each task's
            training cases (unless the task has a validation folder); tasks without split folders are split by case.
            ``"case"``: split every task's cases into ``test_fraction`` / ``val_fraction`` / the rest.
        val_fraction: fraction of cases for validation (at least one case when > 0 and the task has 2+ cases).
        test_fraction: fraction of cases for test (where cases are split, i.e. not for upstream test folders).
        seed: the split is a fixed function of the seed and the sample list.
        case_splits: optional fixed assignments ``case_id -> "training"|"validation"|"test"`` (e.g. an official
            split); the other cases are assigned as above.

    Returns:
        the datalist dict; entries keep the order of ``samples`` within each split. A case id never appears in two
        splits, across all tasks, except where upstream split folders put it there (the Harvard upstream split).

    Raises:
        ValueError: a bad ``split_by``, fraction or ``case_splits`` value.
    """
    if split_by not in ("upstream", "case"):
        raise ValueError(f"split_samples: split_by must be 'upstream' or 'case', got {split_by!r}")
    for name, f in (("val_fraction", val_fraction), ("test_fraction", test_fraction)):
        if not 0.0 <= f < 1.0:
            raise ValueError(f"split_samples: {name} must be in [0, 1), got {f}")
    if val_fraction + test_fraction >= 1.0:
        raise ValueError(f"split_samples: val_fraction + test_fraction must be < 1, got {val_fraction + test_fraction}")
    fixed = dict(case_splits or {})
    bad = {s for s in fixed.values() if s not in DATALIST_KEYS}
    if bad:
        raise ValueError(f"split_samples: case_splits values must be one of {DATALIST_KEYS}, got {sorted(bad)}")

    by_task: dict[str, list[FoundSample]] = defaultdict(list)
    for s in samples:
        by_task[s.entry["task"]].append(s)

    def cases_of(items: Sequence[FoundSample]) -> list[str]:
        return sorted({s.entry["case_id"] for s in items}, key=_natural_key)

    rng = np.random.default_rng(seed)
    assigned: dict[str, str] = dict(fixed)  # case -> split, for tasks split by case
    carved: dict[str, str] = dict(fixed)  # case -> training/validation, inside upstream training folders
    split_of: dict[int, str] = {}
    # small tasks first, so that their few cases are spread over the splits before larger tasks fix them
    for task in sorted(by_task, key=lambda t: (len(cases_of(by_task[t])), t)):
        items = by_task[task]
        if split_by == "upstream" and any(s.split is not None for s in items):
            has_val = any(s.split == "validation" for s in items)
            train_cases = cases_of([s for s in items if (s.split or "training") == "training"])
            if not has_val:
                _assign_cases(train_cases, {"validation": val_fraction}, carved, rng)
            for s in items:
                split = s.split or "training"
                if split == "training" and not has_val and carved.get(s.entry["case_id"]) == "validation":
                    split = "validation"
                split_of[id(s)] = split
        else:
            _assign_cases(cases_of(items), {"test": test_fraction, "validation": val_fraction}, assigned, rng)
            for s in items:
                split_of[id(s)] = assigned[s.entry["case_id"]]
    datalist: dict[str, list[dict]] = {k: [] for k in DATALIST_KEYS}
    for s in samples:
        datalist[split_of[id(s)]].append(dict(s.entry))
    return datalist


def build_datalist(
    root: str | os.PathLike,
    *,
    layout: str = "auto",
    modalities: Sequence[str] | None = None,
    tasks: Sequence[str] | None = None,
    split_by: str = "upstream",
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    case_splits: Mapping[str, str] | None = None,
    validate: bool = True,
    skip_bad: bool = False,
    progress: bool = False,
) -> tuple[dict[str, list[dict]], list[Problem]]:
    """Find, validate and split the fusion samples of a folder.

    Args:
        root: a 2D folder in the common layout or a folder of 3D cases.
        layout: ``"auto"`` (see :func:`detect_layout`), ``"2d"`` or ``"3d"``.
        modalities: 3D: the modalities to fuse (see :func:`find_cases_3d`); 2D: modality folders to use.
        tasks: 2D only: task folders to keep.
        split_by, val_fraction, test_fraction, seed, case_splits: see :func:`split_samples`.
        validate: read every file and check it (:mod:`mmif.data.validation`); ``False`` only checks the pairing.
        skip_bad: drop bad samples and report them instead of raising.
        progress: show a progress bar while validating.

    Returns:
        ``(datalist, problems)``: the datalist dict and the skipped ``(path, problem)`` rows.

    Raises:
        InputError: bad folders or (unless ``skip_bad``) bad samples; ``ValueError`` for bad arguments.
    """
    if layout not in ("auto", "2d", "3d"):
        raise ValueError(f"build_datalist: layout must be 'auto', '2d' or '3d', got {layout!r}")
    if layout == "auto":
        layout = detect_layout(root)
    if layout == "2d":
        samples, problems = find_pairs_2d(root, tasks=tasks, modalities=modalities, skip_bad=skip_bad)
    else:
        if tasks:
            raise ValueError("build_datalist: tasks only applies to the 2D layout; choose 3D sources with modalities")
        samples, problems = find_cases_3d(root, modalities=modalities, skip_bad=skip_bad)
    if validate:
        good, bad = validate_samples([s.entry for s in samples], skip_bad=skip_bad, progress=progress)
        keep = {id(e) for e in good}
        samples = [s for s in samples if id(s.entry) in keep]
        problems = problems + bad
        if not samples:
            raise InputError(root, f"no valid samples ({len(bad)} bad)")
    datalist = split_samples(samples, split_by, val_fraction, test_fraction, seed, case_splits)
    return datalist, problems


def _check_datalist(datalist: object, where: str | os.PathLike | None) -> None:
    if not isinstance(datalist, dict):
        raise InputError(where, f"a datalist must be a JSON object with {'/'.join(DATALIST_KEYS)} lists")
    if not any(k in datalist for k in DATALIST_KEYS):
        raise InputError(where, f"has none of the keys {', '.join(DATALIST_KEYS)}")
    for key in DATALIST_KEYS:
        entries = datalist.get(key, [])
        if not isinstance(entries, list):
            raise InputError(where, f"{key!r} must be a list of entries")
        for i, e in enumerate(entries):
            if not isinstance(e, dict) or "image" not in e:
                raise InputError(where, f"{key}[{i}] must be an object with an 'image' list")
            image = e["image"]
            if isinstance(image, str):
                image = [image]
            if not isinstance(image, list) or not image or not all(isinstance(p, str) for p in image):
                raise InputError(where, f"{key}[{i}]['image'] must be a non-empty list of paths")
            mods = e.get("modalities")
            if mods is not None and (not isinstance(mods, list) or len(mods) != len(image)):
                raise InputError(where, f"{key}[{i}]: {len(image)} images but modalities {mods!r}")


def write_datalist(datalist: Mapping, path: str | os.PathLike) -> Path:
    """Write a datalist as JSON atomically (indented, keys in datalist order).

    Raises:
        InputError: the datalist is malformed (naming ``path``).
    """
    _check_datalist(dict(datalist), path)
    text = json.dumps(datalist, indent=2) + "\n"
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))


def load_datalist(
    path: str | os.PathLike, base_dir: str | os.PathLike | None = None, check_files: bool = False
) -> dict[str, list[dict]]:
    """Read a datalist JSON written by :func:`write_datalist` (or by hand).

    Args:
        path: the JSON file.
        base_dir: folder that relative image paths are resolved against (default: the JSON file's folder).
        check_files: also check that every image path exists.

    Returns:
        the datalist with all of ``training``/``validation``/``test`` (missing ones empty), every ``image`` a list of
        absolute paths; other top-level keys are kept.

    Raises:
        InputError: a missing/unreadable file, invalid JSON, a malformed datalist, or (``check_files``) a missing image.
    """
    path = Path(path).expanduser().absolute()
    if not path.is_file():
        raise InputError(path, "datalist file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise InputError(path, f"not valid JSON (line {e.lineno}, column {e.colno}: {e.msg})") from e
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(path, f"cannot read ({type(e).__name__}: {e})") from e
    _check_datalist(data, path)
    base = Path(base_dir).expanduser().absolute() if base_dir is not None else path.parent
    for key in DATALIST_KEYS:
        entries = data.setdefault(key, [])
        for e in entries:
            image = [e["image"]] if isinstance(e["image"], str) else e["image"]
            e["image"] = [str(p if Path(p).is_absolute() else base / p) for p in image]
            if check_files:
                for p in e["image"]:
                    if not os.path.exists(p):
                        raise InputError(p, f"listed in {path} but not found")
    return data


def format_summary(datalist: Mapping[str, Sequence[dict]], problems: Sequence[Problem] = ()) -> str:
    """A plain-text table of samples (and distinct cases) per task and split, then the skipped items."""
    counts: dict[str, dict[str, list]] = defaultdict(lambda: {k: [0, set()] for k in DATALIST_KEYS})
    for key in DATALIST_KEYS:
        for e in datalist.get(key, []):
            c = counts[e.get("task", "?")][key]
            c[0] += 1
            c[1].add(e.get("case_id"))
    header = f"{'task':<20}" + "".join(f"{k:>20}" for k in DATALIST_KEYS)
    lines = [header, "-" * len(header)]
    for task in sorted(counts):
        cells = "".join(f"{f'{n} ({len(c)} cases)':>20}" for n, c in (counts[task][k] for k in DATALIST_KEYS))
        lines.append(f"{task:<20}{cells}")
    totals = "".join(f"{len(datalist.get(k, [])):>20}" for k in DATALIST_KEYS)
    lines.append(f"{'total':<20}{totals}")
    if problems:
        lines.append(f"skipped {len(problems)}:")
        lines.extend(f"  {p}" for p in problems)
    return "\n".join(lines)
