"""Datasets, datalists, validation and the synthetic phantom."""

from __future__ import annotations

from mmif.data.paths import DATA_ENV_VAR, find_data_root

__all__ = ["DATA_ENV_VAR", "find_data_root"]
