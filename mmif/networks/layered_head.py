"""Region selection with detail transfer: a fusion output head that can show one source's anatomy through another.

A per-voxel selection of one source (max-abs, or any learned decision map) copies the functional image wherever it
is brighter, and the MRI's sulci, grey/white boundary and fissures vanish under the PET/SPECT colour. This head splits
each source ``s_m`` into a base (a Gaussian low-pass ``G * s_m``) and a detail layer ``d_m = s_m - G * s_m`` and
builds the fused image from two learned, diffusion-feature-driven maps:

.. math::

    F = \\Big[\\sum_m w_m s_m + \\sum_m (1 - w_m)\\, g_m d_m\\Big]_0^1 \\cdot [\\max_m s_m > 0]

- ``w_m``: a decision map that follows regions, not pixels: one-hot on the largest logit
  ``prior_weight * rms_7(s_m) + conv([x, f_m, s_m])``, where ``rms_7`` is the local root-mean-square over a 7×7[×7]
  window (a new head starts as the region-energy selection rule; its convolution starts at zero) and ``x``/``f_m`` are
  the fused/per-modality diffusion features. Training runs through the softmax (straight-through estimator);
- ``g_m`` in [0, 1]: how much of the detail of a source that is *not* selected is carried into the fused image,
  ``sigmoid(gain_prior_weight * (rms_7(d_m) - rms_7(d_sel)) + conv([x, f_m, s_m]))`` with ``d_sel`` the selected
  source's detail: a new head carries a source's detail where it has more detail than the source selected (the MRI's
  sulci through a smooth tracer, not the tracer's blocky pseudo-colour edges into the MRI), ``initial_gain`` where
  the two have as much; the features learn where to do otherwise. Where the tracer is selected,
  ``F = s_PET + g_MRI d_MRI``: the tracer's brightness with the MRI's anatomy on top.

Everything is exact where it should be: voxels black in every source stay exactly 0, a source that is selected keeps
its own intensities and detail, and the output is invariant to the order of the sources (shared weights, symmetric
sums; an exact tie of logits splits evenly).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from monai.networks.blocks import Convolution
from monai.networks.layers import separable_filtering

from mmif.networks.modalities import fold_modalities, unfold_modalities

__all__ = ["RegionDetailHead", "gaussian_lowpass", "local_rms"]


def _filter(image: torch.Tensor, taps: torch.Tensor) -> torch.Tensor:
    """``image`` (B, M, *S) filtered along every spatial axis with the 1D ``taps`` (edges replicated)."""
    spatial_dims = image.ndim - 2
    return separable_filtering(image, [taps.to(image)] * spatial_dims, mode="replicate")


def gaussian_lowpass(image: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur (truncated at 3 sigma) of ``image`` (B, M, *spatial), per channel, same size."""
    radius = max(1, int(math.ceil(3.0 * sigma)))
    r = torch.arange(-radius, radius + 1, dtype=torch.float64)
    taps = torch.exp(-0.5 * (r / sigma) ** 2)
    return _filter(image, (taps / taps.sum()).float())


def local_rms(image: torch.Tensor, window: int) -> torch.Tensor:
    """Root-mean-square of ``image`` (B, M, *spatial) over a ``window``-wide box around each voxel, same size."""
    taps = torch.full((window,), 1.0 / window)
    return _filter(image * image, taps).clamp_min(0.0).sqrt()


class RegionDetailHead(nn.Module):
    """Region selection plus detail transfer from the sources that are not selected (see the module docstring).

    Args:
        spatial_dims: number of spatial dimensions (2 or 3).
        channels: channels of the fused and per-modality features.
        out_channels: must be 1 (one luminance image).
        detail_sigma: Gaussian sigma (voxels) of the base layer; the detail layer is what it removes.
        energy_window: side of the local-energy window of the selection prior (odd).
        prior_weight: initial (learnable) weight of the selection prior, the logit gap between two sources whose local
            RMS differs by 1.
        initial_gain: the detail gain ``g_m`` of a new head where the two detail layers are equally strong (0 < g < 1).
        gain_prior_weight: initial (learnable) weight of the detail-energy prior of the gains, the logit added per unit
            of local detail RMS by which a source's detail exceeds the selected source's.
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        out_channels: int = 1,
        detail_sigma: float = 3.0,
        energy_window: int = 7,
        prior_weight: float = 32.0,
        initial_gain: float = 0.5,
        gain_prior_weight: float = 100.0,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if out_channels != 1:
            raise ValueError(f"{name}: produces one luminance channel, got out_channels={out_channels}.")
        if not detail_sigma > 0:
            raise ValueError(f"{name}: detail_sigma must be > 0, got {detail_sigma}.")
        if energy_window < 1 or energy_window % 2 == 0:
            raise ValueError(f"{name}: energy_window must be a positive odd number, got {energy_window}.")
        if not prior_weight > 0:
            raise ValueError(f"{name}: prior_weight must be > 0, got {prior_weight}.")
        if gain_prior_weight < 0:
            raise ValueError(f"{name}: gain_prior_weight must be >= 0, got {gain_prior_weight}.")
        if not 0.0 < initial_gain < 1.0:
            raise ValueError(f"{name}: initial_gain must be in (0, 1), got {initial_gain}.")
        self.detail_sigma = float(detail_sigma)
        self.energy_window = int(energy_window)
        self.prior_weight = nn.Parameter(torch.tensor(float(prior_weight)))
        self.gain_prior_weight = nn.Parameter(torch.tensor(float(gain_prior_weight)))

        def conv() -> Convolution:
            return Convolution(spatial_dims, 2 * channels + 1, 1, kernel_size=3, conv_only=True)

        self.selection_logit = conv()
        self.gain_logit = conv()
        for layer in (self.selection_logit, self.gain_logit):
            nn.init.zeros_(layer.conv.weight)
            nn.init.zeros_(layer.conv.bias)
        nn.init.constant_(self.gain_logit.conv.bias, math.log(initial_gain / (1.0 - initial_gain)))

    def _logits(self, layer: nn.Module, x: torch.Tensor, per_modality: torch.Tensor, image: torch.Tensor):
        num_modalities = image.shape[1]
        shared = x.unsqueeze(1).expand(-1, num_modalities, *x.shape[1:])
        stacked = torch.cat([shared, per_modality, image.unsqueeze(2)], dim=2)
        return unfold_modalities(layer(fold_modalities(stacked)), num_modalities).squeeze(2)

    def selection_weights(self, x: torch.Tensor, per_modality: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """The decision map ``w`` (B, M, *S): one-hot over M (straight-through softmax gradients in training)."""
        logits = self._logits(self.selection_logit, x, per_modality, image)
        logits = logits + self.prior_weight * local_rms(image, self.energy_window)
        hard = (logits == logits.amax(dim=1, keepdim=True)).to(logits.dtype)
        hard = hard / hard.sum(dim=1, keepdim=True)
        if not logits.requires_grad:
            return hard
        soft = torch.softmax(logits, dim=1)
        return hard + soft - soft.detach()

    def detail_gains(
        self, x: torch.Tensor, per_modality: torch.Tensor, image: torch.Tensor, weights: torch.Tensor,
        detail: torch.Tensor,
    ) -> torch.Tensor:
        """``g`` (B, M, *S) in [0, 1]: the share of each source's detail layer carried where it is not selected
        (``weights``: the decision map, ``detail``: the sources' detail layers)."""
        energy = local_rms(detail, self.energy_window)
        selected = (weights.detach() * energy).sum(dim=1, keepdim=True)
        prior = self.gain_prior_weight * (energy - selected)
        return torch.sigmoid(self._logits(self.gain_logit, x, per_modality, image) + prior)

    def forward(self, x: torch.Tensor, per_modality: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """``x`` (B, C, *S), ``per_modality`` (B, M, C, *S), ``image`` (B, M, *S) in [0, 1] -> fused (B, 1, *S)."""
        weights = self.selection_weights(x, per_modality, image)
        detail = image - gaussian_lowpass(image, self.detail_sigma)
        carried = (1.0 - weights) * self.detail_gains(x, per_modality, image, weights, detail) * detail
        fused = ((weights * image).sum(dim=1, keepdim=True) + carried.sum(dim=1, keepdim=True)).clamp(0.0, 1.0)
        foreground = (image.amax(dim=1, keepdim=True) > 0).to(fused.dtype)
        return fused * foreground
