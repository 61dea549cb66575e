"""Stage II fusion network: fuses multi-level, multi-timestep diffusion features of N co-registered sources.

The design follows the fusion head of DM-FNet ("DM-FNet: Unified multimodal medical image fusion via diffusion
process-trained encoder-decoder", IEEE Transactions on Multimedia, 2025; code at github.com/HeDan-11/DM-FNet): per
decoder level the features of the diffusion timesteps are aggregated, the modalities are fused with a learned spatial +
channel + pixel attention (the attention block of "DEA-Net: Single image dehazing based on detail-enhanced convolution
and content-guided attention"), and the fused levels are merged progressively from coarse to fine before an output
head. mmif generalises the two-input attention to any number of modalities with a softmax over modalities and makes
every part generic in ``spatial_dims`` (2D slices and 3D volumes).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from monai.networks.blocks import Convolution
from monai.networks.layers.factories import Conv, Pool
from monai.utils import ensure_tuple_rep

from mmif.networks.layered_head import RegionDetailHead
from mmif.networks.modalities import fold_modalities, unfold_modalities

__all__ = ["DiffusionFeatureFusionNet"]

_INTERP_MODE = {1: "linear", 2: "bilinear", 3: "trilinear"}


def resize_to(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """Linearly resample ``x`` (N, C, *spatial) to the spatial size of ``reference`` (no-op when it already matches)."""
    size = reference.shape[2:]
    if x.shape[2:] == size:
        return x
    return F.interpolate(x, size=size, mode=_INTERP_MODE[x.ndim - 2], align_corners=False)


def default_hidden_channels(num_levels: int, finest: int = 8, largest: int = 32) -> tuple[int, ...]:
    """Working channels per level, coarsest to finest: ``finest`` at the finest level, doubling per coarser level up to
    ``largest`` (the cost of the head is dominated by the full-resolution level)."""
    return tuple(min(finest * 2**k, largest) for k in reversed(range(num_levels)))


def _conv_block(
    spatial_dims: int, in_channels: int, out_channels: int, kernel_size: int, act, norm, conv_only: bool = False
) -> Convolution:
    return Convolution(
        spatial_dims,
        in_channels,
        out_channels,
        kernel_size=kernel_size,
        act=act,
        norm=norm,
        conv_only=conv_only,
        adn_ordering="NA",
    )


class TimestepAggregationBlock(nn.Module):
    """Merges the features of the T diffusion timesteps of one level: concatenation, 1x1 conv, 3x3 conv.

    Args:
        spatial_dims: number of spatial dimensions (2 or 3).
        in_channels: channels per timestep ``C_l``.
        num_timesteps: number of timesteps ``T``.
        out_channels: output channels.
        act: activation (MONAI name or (name, args)).
        norm: normalisation (MONAI name or (name, args)) or ``None``.
    """

    def __init__(self, spatial_dims: int, in_channels: int, num_timesteps: int, out_channels: int, act, norm) -> None:
        super().__init__()
        self.reduce = _conv_block(spatial_dims, in_channels * num_timesteps, out_channels, 1, act, norm)
        self.mix = _conv_block(spatial_dims, out_channels, out_channels, 3, act, norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (N, T, C, *spatial) -> (N, out_channels, *spatial)."""
        return self.mix(self.reduce(x.flatten(1, 2)))


class SpatialAttention(nn.Module):
    """One attention logit per voxel from the channel-wise mean and max (a 7x7[x7] conv on 2 channels)."""

    def __init__(self, spatial_dims: int, kernel_size: int = 7) -> None:
        super().__init__()
        conv_type = Conv[Conv.CONV, spatial_dims]
        self.conv = conv_type(2, 1, kernel_size, padding=kernel_size // 2, padding_mode="replicate")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (N, C, *spatial) -> (N, 1, *spatial)."""
        return self.conv(torch.cat([x.mean(dim=1, keepdim=True), x.amax(dim=1, keepdim=True)], dim=1))


class ChannelAttention(nn.Module):
    """One attention logit per channel from global average pooling and a bottleneck MLP (1x1 convs)."""

    def __init__(self, spatial_dims: int, channels: int, reduction: int = 8) -> None:
        super().__init__()
        conv_type = Conv[Conv.CONV, spatial_dims]
        hidden = max(channels // reduction, 4)
        self.pool = Pool[Pool.ADAPTIVEAVG, spatial_dims](1)
        self.mlp = nn.Sequential(conv_type(channels, hidden, 1), nn.ReLU(), conv_type(hidden, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (N, C, *spatial) -> (N, C, 1[, 1, 1])."""
        return self.mlp(self.pool(x))


class PixelAttention(nn.Module):
    """Per-voxel, per-channel logits from the features and the coarse (spatial + channel) attention map.

    Each channel and its coarse attention map are interleaved and mixed by a grouped 3x3[x3] convolution (one group per
    channel), as in DEA-Net's pixel attention.
    """

    def __init__(self, spatial_dims: int, channels: int) -> None:
        super().__init__()
        conv_type = Conv[Conv.CONV, spatial_dims]
        self.conv = conv_type(2 * channels, channels, 3, padding=1, padding_mode="replicate", groups=channels)

    def forward(self, x: torch.Tensor, coarse: torch.Tensor) -> torch.Tensor:
        """``x``, ``coarse``: (N, C, *spatial) -> logits (N, C, *spatial)."""
        return self.conv(torch.stack([x, coarse], dim=2).flatten(1, 2))


class CrossModalAttentionFusion(nn.Module):
    """Fuses the M modalities' features of one level with learned per-voxel weights.

    For modality ``m`` with features ``x_m`` the attention logit is ``PA(x_m, SA(x_m) + CA(x_m))``; the weights are a
    softmax of the logits over modalities (DM-FNet's sigmoid gate ``w x + (1 - w) y`` generalised to N inputs) and the
    output is ``sum_m w_m * x_m + mean_m x_m`` (the residual path). Shared weights and a symmetric reduction make the
    result independent of the order of the modalities.

    Args:
        spatial_dims: number of spatial dimensions (2 or 3).
        channels: feature channels ``C``.
        reduction: channel attention bottleneck ratio.
    """

    def __init__(self, spatial_dims: int, channels: int, reduction: int = 8) -> None:
        super().__init__()
        self.spatial_attention = SpatialAttention(spatial_dims)
        self.channel_attention = ChannelAttention(spatial_dims, channels, reduction)
        self.pixel_attention = PixelAttention(spatial_dims, channels)

    def modality_weights(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (B, M, C, *spatial) -> weights (B, M, C, *spatial), summing to 1 over M."""
        folded = fold_modalities(x)
        coarse = self.spatial_attention(folded) + self.channel_attention(folded)
        logits = self.pixel_attention(folded, coarse)
        return torch.softmax(unfold_modalities(logits, x.shape[1]), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (B, M, C, *spatial) -> fused (B, C, *spatial)."""
        return (self.modality_weights(x) * x).sum(dim=1) + x.mean(dim=1)


class ImageEmbedding(nn.Module):
    """Embeds each source image (1 channel) into the finest level's feature space (weights shared across modalities)."""

    def __init__(self, spatial_dims: int, out_channels: int, act, norm) -> None:
        super().__init__()
        self.conv = _conv_block(spatial_dims, 1, out_channels, 3, act, norm)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        """``image``: (B, M, *spatial) -> (B, M, out_channels, *spatial)."""
        return unfold_modalities(self.conv(fold_modalities(image).unsqueeze(1)), image.shape[1])


class OutputHead(nn.Module):
    """A 3x3[x3] convolution to ``out_channels``, then sigmoid (or clamp) to [0, 1]."""

    def __init__(self, spatial_dims: int, in_channels: int, out_channels: int, output_activation: str) -> None:
        super().__init__()
        self.conv = _conv_block(spatial_dims, in_channels, out_channels, 3, None, None, conv_only=True)
        self.output_activation = output_activation

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x``: (N, C, *spatial) -> (N, out_channels, *spatial) in [0, 1]."""
        y = self.conv(x)
        return torch.sigmoid(y) if self.output_activation == "sigmoid" else y.clamp(0.0, 1.0)


class SourceWeightingHead(nn.Module):
    """Fuses the source images themselves with per-voxel weights predicted from the fused and per-modality features.

    For modality ``m`` a logit is predicted from ``[x, f_m, s_m]`` (fused features, the modality's own features, its
    image) by a 3x3[x3] convolution shared across modalities; a softmax over modalities gives the weights ``w_m``, and
    the output is ``clamp(sum_m w_m s_m + r, 0, 1)`` with a learned correction ``r`` predicted from ``x`` (its
    convolution starts at zero, so a new head starts as a smooth weighted average of the sources). The output stays
    on the sources' intensity scale: without the correction, background that is black in every source stays exactly
    black (with it, black up to the correction, which the clamp keeps from going below 0).

    ``selection="hard"`` makes the weights one-hot (each voxel takes the source with the largest logit: a learned
    decision map, which keeps every source's exact intensities) and trains through the softmax with a
    straight-through estimator. ``selection="relaxed"`` trains with the softmax weights and applies the one-hot weights
    in eval mode (validation and inference): the decision map without the straight-through estimator's tendency to
    switch sources pixel by pixel to create gradient. ``correction=False`` leaves out the correction ``r``: every
    fused voxel is then a weighted mix (or, with one-hot weights, an exact copy) of the sources' voxels.

    ``prior="max"`` adds ``prior_weight * s_m`` (a learnable weight) to every logit and starts the logit convolution at
    zero: a new head then selects the brighter source at every voxel (the max-abs rule on sources in [0, 1]) and
    training learns where the features say otherwise, instead of learning the max rule itself from a random start.

    Args:
        spatial_dims: number of spatial dimensions (2 or 3).
        channels: channels of the fused and per-modality features.
        out_channels: must be 1 (one luminance image).
        selection: ``"soft"`` (softmax weights), ``"hard"`` (one-hot weights, straight-through gradients) or
            ``"relaxed"`` (softmax weights in training mode, one-hot weights in eval mode).
        correction: add the learned correction ``r``.
        prior: ``None`` or ``"max"`` (start from the max-abs rule, see above).
        prior_weight: initial weight of the prior term (the logit gap between two sources that differ by 1).
    """

    def __init__(
        self,
        spatial_dims: int,
        channels: int,
        out_channels: int = 1,
        selection: str = "soft",
        correction: bool = True,
        prior: str | None = None,
        prior_weight: float = 8.0,
    ) -> None:
        super().__init__()
        if out_channels != 1:
            raise ValueError(f"{type(self).__name__}: source weighting produces one channel, got {out_channels}.")
        if selection not in ("soft", "hard", "relaxed"):
            raise ValueError(
                f"{type(self).__name__}: selection must be 'soft', 'hard' or 'relaxed', got {selection!r}."
            )
        if prior not in (None, "max"):
            raise ValueError(f"{type(self).__name__}: prior must be None or 'max', got {prior!r}.")
        if prior is not None and not prior_weight > 0:
            raise ValueError(f"{type(self).__name__}: prior_weight must be > 0, got {prior_weight}.")
        self.selection = selection
        self.logit = _conv_block(spatial_dims, 2 * channels + 1, 1, 3, None, None, conv_only=True)
        self.prior_weight = nn.Parameter(torch.tensor(float(prior_weight))) if prior is not None else None
        if self.prior_weight is not None:
            nn.init.zeros_(self.logit.conv.weight)
            nn.init.zeros_(self.logit.conv.bias)
        self.correction = _conv_block(spatial_dims, channels, 1, 3, None, None, conv_only=True) if correction else None
        if self.correction is not None:
            nn.init.zeros_(self.correction.conv.weight)
            nn.init.zeros_(self.correction.conv.bias)

    def source_weights(self, x: torch.Tensor, per_modality: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """``x`` (B, C, *S), ``per_modality`` (B, M, C, *S), ``image`` (B, M, *S) -> weights (B, M, *S) summing to 1
        over M."""
        num_modalities = image.shape[1]
        shared = x.unsqueeze(1).expand(-1, num_modalities, *x.shape[1:])
        stacked = torch.cat([shared, per_modality, image.unsqueeze(2)], dim=2)
        logits = unfold_modalities(self.logit(fold_modalities(stacked)), num_modalities).squeeze(2)
        if self.prior_weight is not None:
            logits = logits + self.prior_weight * image
        if self.selection == "soft" or (self.selection == "relaxed" and self.training):
            return torch.softmax(logits, dim=1)
        # one-hot on the largest logit (an exact tie, e.g. identical sources, splits evenly: order-invariant)
        hard = (logits == logits.amax(dim=1, keepdim=True)).to(logits.dtype)
        hard = hard / hard.sum(dim=1, keepdim=True)
        if not logits.requires_grad:
            return hard  # exactly one-hot at inference
        weights = torch.softmax(logits, dim=1)
        return hard + weights - weights.detach()  # forward: one-hot (to rounding); backward: the softmax's gradient

    def forward(self, x: torch.Tensor, per_modality: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """-> fused (B, 1, *S) in [0, 1]."""
        weighted = (self.source_weights(x, per_modality, image) * image).sum(dim=1, keepdim=True)
        if self.correction is None:
            return weighted
        return (weighted + self.correction(x)).clamp(0.0, 1.0)


class DiffusionFeatureFusionNet(nn.Module):
    """Fusion head on diffusion decoder features (DM-FNet Stage II), for 2 or more modalities in 2D or 3D.

    DM-FNet ("DM-FNet: Unified multimodal medical image fusion via diffusion process-trained encoder-decoder", IEEE
    Transactions on Multimedia, 2025) trains a denoising diffusion UNet on the source images (Stage I) and fuses the
    decoder features it produces at a few timesteps with a light head (Stage II). This head has three parts:

    1. timestep aggregation per level: the T timesteps' features are concatenated and reduced by a 1x1 then a 3x3
       convolution, with weights shared across modalities;
    2. cross-modal fusion per level: spatial + channel + pixel attention gives per-voxel, per-channel logits for each
       modality, a softmax over modalities turns them into weights, and the weighted sum plus the modalities' mean is
       the fused level (DM-FNet's two-input gate generalised to N inputs);
    3. progressive aggregation from the coarsest to the finest level (resample, add, 3x3 convolution), then an output
       head to one channel in [0, 1].

    The output head is either DM-FNet's (``output_mode="image"``: a convolution from the fused features to the image)
    or a source-weighting head (``output_mode="source_weights"``, :class:`SourceWeightingHead`): the features decide,
    per voxel, how much of each source image goes into the fused image, plus a learned correction. The second keeps
    the sources' exact intensities where one source dominates (black background stays black) and trains in far fewer
    iterations; it needs the source images (``forward(features, image)``). ``output_mode="region_detail"``
    (:class:`~mmif.networks.layered_head.RegionDetailHead`) selects a source per region and carries the detail layers
    of the sources it does not select, so the MRI's anatomy shows through a brighter PET/SPECT region.

    All weights are independent of the number of modalities M and the fused output is invariant to their order
    (``num_modalities``, when given, is only checked). Optionally (``image_skip=True``) the source luminance images are
    embedded and added to the finest level's features before fusion, a direct path for fine detail.

    Args:
        spatial_dims: number of spatial dimensions, 2 or 3.
        feature_channels: channels ``C_l`` of each feature level, ordered coarsest to finest (the extractor's
            ``feature_channels``).
        num_timesteps: number of diffusion timesteps ``T`` per level.
        num_modalities: expected number of modalities M (>= 2), checked in ``forward``; ``None`` accepts any M >= 2.
        hidden_channels: working channels per level (coarsest to finest), or one int for every level. ``None`` (the
            CPU-friendly default) uses 8 at the finest level, doubling per coarser level up to 32, e.g. (32, 32, 16, 8)
            for four levels; larger heads pass e.g. ``(128, 128, 64, 64)``.
        out_channels: channels of the fused output (1 = luminance).
        act: activation type and arguments (MONAI ``Act`` name or ``(name, args)``).
        norm: normalisation type and arguments (MONAI ``Norm`` name or ``(name, args)``), ``None`` for none.
        attention_reduction: bottleneck ratio of the channel attention MLP.
        image_skip: embed the source images (``forward(..., image=...)``) into the finest level.
        output_activation: ``"sigmoid"`` or ``"clamp"``, how the output is brought to [0, 1] (``"image"`` mode).
        output_mode: ``"image"`` (a convolution to the fused image) or ``"source_weights"`` (per-voxel weights of the
            source images plus a correction, see :class:`SourceWeightingHead`) or ``"region_detail"`` (a region decision
            map plus the detail layers of the sources it does not select, see
            :class:`~mmif.networks.layered_head.RegionDetailHead`).
        selection: ``"soft"``, ``"hard"`` or ``"relaxed"`` weights of the source-weighting head (see
            :class:`SourceWeightingHead`).
        correction: whether the source-weighting head adds its learned correction (see :class:`SourceWeightingHead`).
        prior: ``None`` or ``"max"``: the source-weighting head starts from the max-abs selection and learns where to
            depart from it (see :class:`SourceWeightingHead`).
        prior_weight: initial weight of that prior (``"source_weights"``), or of the region-energy selection prior
            (``"region_detail"``).
        detail_sigma: ``"region_detail"``: Gaussian sigma (voxels) of the base layer (see
            :class:`~mmif.networks.layered_head.RegionDetailHead`).
        energy_window: ``"region_detail"``: window of the local energy that the decision map starts from.
        initial_gain: ``"region_detail"``: the detail gain of a new head where two detail layers are equally strong.
        gain_prior_weight: ``"region_detail"``: the weight of the gains' detail-energy prior.
    """

    def __init__(
        self,
        spatial_dims: int,
        feature_channels: Sequence[int],
        num_timesteps: int,
        num_modalities: int | None = None,
        hidden_channels: Sequence[int] | int | None = None,
        out_channels: int = 1,
        act: tuple | str = ("leakyrelu", {"negative_slope": 0.2}),
        norm: tuple | str | None = None,
        attention_reduction: int = 8,
        image_skip: bool = False,
        output_activation: str = "sigmoid",
        output_mode: str = "image",
        selection: str = "soft",
        correction: bool = True,
        prior: str | None = None,
        prior_weight: float = 8.0,
        detail_sigma: float = 3.0,
        energy_window: int = 7,
        initial_gain: float = 0.5,
        gain_prior_weight: float = 100.0,
    ) -> None:
        super().__init__()
        name = type(self).__name__
        if spatial_dims not in (2, 3):
            raise ValueError(f"{name}: spatial_dims must be 2 or 3, got {spatial_dims}.")
        feature_channels = tuple(feature_channels)
        if not feature_channels or any(int(c) != c or c < 1 for c in feature_channels):
            raise ValueError(
                f"{name}: feature_channels must be a non-empty sequence of positive ints, got {feature_channels}."
            )
        if num_timesteps < 1:
            raise ValueError(f"{name}: num_timesteps must be >= 1, got {num_timesteps}.")
        if num_modalities is not None and num_modalities < 2:
            raise ValueError(f"{name}: num_modalities must be >= 2 (or None), got {num_modalities}.")
        if hidden_channels is None:
            hidden_channels = default_hidden_channels(len(feature_channels))
        elif isinstance(hidden_channels, int):
            hidden_channels = ensure_tuple_rep(hidden_channels, len(feature_channels))
        hidden_channels = tuple(hidden_channels)
        if len(hidden_channels) != len(feature_channels):
            raise ValueError(
                f"{name}: hidden_channels needs one value per level ({len(feature_channels)}), got {hidden_channels}."
            )
        if any(h < 1 for h in hidden_channels) or out_channels < 1 or attention_reduction < 1:
            raise ValueError(f"{name}: hidden_channels, out_channels and attention_reduction must be positive.")
        if output_activation not in ("sigmoid", "clamp"):
            raise ValueError(f"{name}: output_activation must be 'sigmoid' or 'clamp', got {output_activation!r}.")
        if output_mode not in ("image", "source_weights", "region_detail"):
            raise ValueError(
                f"{name}: output_mode must be 'image', 'source_weights' or 'region_detail', got {output_mode!r}."
            )
        if prior is not None and output_mode != "source_weights":
            raise ValueError(f"{name}: prior={prior!r} acts on source weights and needs output_mode='source_weights'.")

        self.spatial_dims = spatial_dims
        self.feature_channels = feature_channels
        self.num_timesteps = num_timesteps
        self.num_modalities = num_modalities
        self.hidden_channels = hidden_channels
        self.image_skip = image_skip
        self.output_mode = output_mode

        # 1. timestep aggregation, 2. cross-modal fusion (one of each per level)
        self.timestep_blocks = nn.ModuleList(
            TimestepAggregationBlock(spatial_dims, c, num_timesteps, h, act, norm)
            for c, h in zip(feature_channels, hidden_channels)
        )
        self.fusion_blocks = nn.ModuleList(
            CrossModalAttentionFusion(spatial_dims, h, attention_reduction) for h in hidden_channels
        )
        # 3. progressive aggregation: level l is mixed into the next (finer) level's channels
        next_channels = hidden_channels[1:] + hidden_channels[-1:]
        self.aggregation_blocks = nn.ModuleList(
            _conv_block(spatial_dims, h, n, 3, act, norm) for h, n in zip(hidden_channels, next_channels)
        )
        self.image_embedding = ImageEmbedding(spatial_dims, hidden_channels[-1], act, norm) if image_skip else None
        if output_mode == "image":
            self.head = OutputHead(spatial_dims, hidden_channels[-1], out_channels, output_activation)
        elif output_mode == "region_detail":
            self.head = RegionDetailHead(
                spatial_dims,
                hidden_channels[-1],
                out_channels,
                detail_sigma=detail_sigma,
                energy_window=energy_window,
                prior_weight=prior_weight,
                initial_gain=initial_gain,
                gain_prior_weight=gain_prior_weight,
            )
        else:
            self.head = SourceWeightingHead(
                spatial_dims, hidden_channels[-1], out_channels, selection, correction, prior, prior_weight
            )

    @property
    def uses_image(self) -> bool:
        """Whether ``forward`` needs the source images (``image_skip`` or the source-weighting head)."""
        return self.image_skip or self.output_mode != "image"

    def _check_inputs(self, features: Sequence[torch.Tensor], image: torch.Tensor | None) -> None:
        name = type(self).__name__
        if len(features) != len(self.feature_channels):
            raise ValueError(f"{name}: expected {len(self.feature_channels)} feature levels, got {len(features)}.")
        lead = None
        for level, (feat, channels) in enumerate(zip(features, self.feature_channels)):
            if feat.ndim != 4 + self.spatial_dims:
                raise ValueError(
                    f"{name}: level {level} must be (B, M, T, C, *spatial) with {self.spatial_dims} spatial dims, "
                    f"got shape {tuple(feat.shape)}."
                )
            b, m, t, c = feat.shape[:4]
            if lead is None:
                lead = (b, m)
            if (b, m) != lead:
                raise ValueError(f"{name}: level {level} has batch/modalities {(b, m)}, level 0 has {lead}.")
            if t != self.num_timesteps or c != channels:
                raise ValueError(
                    f"{name}: level {level} must have T={self.num_timesteps}, C={channels}, got T={t}, C={c}."
                )
        b, m = lead
        if m < 2 or (self.num_modalities is not None and m != self.num_modalities):
            expected = self.num_modalities if self.num_modalities is not None else ">= 2"
            raise ValueError(f"{name}: expected {expected} modalities, got {m}.")
        finest = features[-1].shape[4:]
        if any(any(s > f for s, f in zip(feat.shape[4:], finest)) for feat in features):
            raise ValueError(f"{name}: feature levels must be ordered coarsest to finest.")
        if self.uses_image:
            if image is None:
                raise ValueError(
                    f"{name}: image_skip=True or output_mode={self.output_mode!r} needs the source images: "
                    "forward(features, image)."
                )
            if tuple(image.shape) != (b, m, *finest):
                raise ValueError(f"{name}: image must have shape {(b, m, *finest)}, got {tuple(image.shape)}.")

    def forward(self, features: Sequence[torch.Tensor], image: torch.Tensor | None = None) -> torch.Tensor:
        """Fuse the sources' diffusion features.

        Args:
            features: one tensor per level, coarsest to finest, each ``(B, M, T, C_l, *spatial_l)``; the finest level
                is at the output resolution.
            image: ``(B, M, *spatial)`` source luminance in [0, 1] at the finest level's size; required only when
                ``image_skip=True`` or ``output_mode="source_weights"`` (ignored otherwise).

        Returns:
            fused image ``(B, out_channels, *spatial)`` in [0, 1], ``spatial`` = the finest level's size.
        """
        self._check_inputs(features, image)
        num_modalities = features[0].shape[1]
        last = len(features) - 1
        x: torch.Tensor | None = None
        for level, feat in enumerate(features):
            # 1. timestep aggregation (modalities folded into the batch: shared weights)
            per_modality = unfold_modalities(self.timestep_blocks[level](fold_modalities(feat)), num_modalities)
            if level == last and self.image_embedding is not None:
                per_modality = per_modality + self.image_embedding(image)
            # 2. cross-modal fusion
            fused = self.fusion_blocks[level](per_modality)
            # 3. progressive aggregation, coarse to fine
            if x is not None:
                fused = fused + resize_to(x, fused)
            x = self.aggregation_blocks[level](fused)
        if self.output_mode != "image":
            return self.head(x, per_modality, image)
        return self.head(x)
