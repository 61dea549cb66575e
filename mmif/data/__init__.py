"""Datasets, datalists, validation and the synthetic phantom.

- :mod:`mmif.data.paths`: where the real development data is (``MMIF_DATA``);
- :mod:`mmif.data.datalist`: MONAI datalists from 2D folders (common MMIF layout) and 3D case folders, splits by case;
- :mod:`mmif.data.validation`: the checks every sample passes while a datalist is built;
- :mod:`mmif.data.phantom`: the synthetic multimodal head phantom (the embedded default data).
"""

from __future__ import annotations

from mmif.data.datalist import (
    DATALIST_KEYS,
    SPLIT_FOLDERS,
    FoundSample,
    build_datalist,
    case_id_from_name,
    detect_layout,
    find_cases_3d,
    find_pairs_2d,
    format_summary,
    load_datalist,
    split_samples,
    write_datalist,
)
from mmif.data.paths import DATA_ENV_VAR, find_data_root
from mmif.data.phantom import PHANTOM_LABELS, PHANTOM_MODALITIES, make_phantom, write_phantom_dataset
from mmif.data.validation import Problem, check_sample, order_modalities, source_kind, validate_samples

__all__ = [
    "DATA_ENV_VAR",
    "find_data_root",
    "DATALIST_KEYS",
    "SPLIT_FOLDERS",
    "FoundSample",
    "Problem",
    "build_datalist",
    "case_id_from_name",
    "detect_layout",
    "find_cases_3d",
    "find_pairs_2d",
    "format_summary",
    "load_datalist",
    "split_samples",
    "write_datalist",
    "check_sample",
    "order_modalities",
    "source_kind",
    "validate_samples",
    "PHANTOM_LABELS",
    "PHANTOM_MODALITIES",
    "make_phantom",
    "write_phantom_dataset",
]
