"""The CNN zoo of the study (VGG19(-BN), ResNet-50, EfficientNet-B0) adapted to small faces.

``build_model(name, cfg)`` returns a torchvision model whose stem takes ``in_channels``
(1 for the gray stem trained from scratch, 3 for ImageNet weights on replicated gray) at
``cfg.input_size`` pixels and whose head has ``n_classes`` outputs. ``stem_stride`` sets how
much the stem shrinks the image (torchvision's own stems: ResNet 4, EfficientNet 2, VGG 1);
``width`` scales the channels of every model (1.0 = the published network).
``load_imagenet_weights`` loads torchvision's ImageNet weights (fetched through emolib's
downloader) and says why when it cannot.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn
from torchvision import models as tvm
from torchvision.models import efficientnet as tv_eff
from torchvision.models import vgg as tv_vgg

from emolib.registry import CNN_MODELS

MODEL_NAMES = CNN_MODELS


@dataclass(frozen=True)
class WeightsStatus:
    """What a model was initialised from: ``imagenet`` or ``scratch``, and why."""

    model: str
    requested: str
    used: str
    reason: str


def in_channels_of(stem: str) -> int:
    """1 for the ``gray`` stem, 3 for the ``rgb`` stem (gray replicated, ImageNet style)."""
    return 1 if stem == "gray" else 3


def _scaled_vgg_cfg(width: float) -> list:
    return [v if v == "M" else max(8, int(round(v * width))) for v in tv_vgg.cfgs["E"]]


def build_vgg19(n_classes: int, in_channels: int, batch_norm: bool, width: float = 1.0,
                stem_stride: int = 1, dropout: float = 0.3) -> nn.Module:
    """VGG19 (configuration E) with a global-average-pool head: at 48 px the last feature map
    is 1x1, so torchvision's 7x7 pool + 4096-wide classifier would only copy one pixel 49 times."""
    cfg = _scaled_vgg_cfg(width)
    features = tv_vgg.make_layers(cfg, batch_norm=batch_norm)
    first = features[0]
    features[0] = nn.Conv2d(in_channels, first.out_channels, 3, stride=stem_stride, padding=1)
    model = tv_vgg.VGG(features, num_classes=n_classes, init_weights=True)
    model.avgpool = nn.AdaptiveAvgPool2d(1)
    model.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(cfg[-2], n_classes))
    return model


def build_resnet50(n_classes: int, in_channels: int, stem_stride: int = 4, width: float = 1.0) -> nn.Module:
    """ResNet-50 with ``width`` times the channels of every stage (1.0 = the published network;
    0.5 costs about a quarter of the compute), each residual branch's last BatchNorm starting at
    zero (torchvision's ``zero_init_residual``: every block starts as the identity, which a
    from-scratch run of a few epochs needs); stem_stride 4 = torchvision's 7x7/2 conv +
    max-pool, 2 = 3x3/2 conv without the pool, 1 = 3x3/1 conv without the pool (CIFAR style,
    16x the compute of 4)."""
    model = tvm.resnet50(weights=None, num_classes=n_classes, zero_init_residual=True)
    if width != 1.0:
        _rescale_resnet(model, width, n_classes)
    stem_channels = model.conv1.out_channels
    if stem_stride != 4 or in_channels != 3:
        kernel, stride = (7, 2) if stem_stride == 4 else (3, stem_stride)
        model.conv1 = nn.Conv2d(in_channels, stem_channels, kernel, stride=stride, padding=kernel // 2, bias=False)
        nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    if stem_stride < 4:
        model.maxpool = nn.Identity()
    return model


def _rescale_resnet(model: tvm.ResNet, width: float, n_classes: int) -> None:
    """Rebuild a torchvision ResNet-50's stem, four stages and head at ``width`` times the
    channels, initialised as torchvision initialises the full network (``zero_init_residual``)."""
    def scaled(channels: int) -> int:
        return max(8, int(round(channels * width)))

    block = tvm.resnet.Bottleneck
    model.inplanes = scaled(64)
    model.conv1 = nn.Conv2d(3, model.inplanes, 7, stride=2, padding=3, bias=False)
    model.bn1 = nn.BatchNorm2d(model.inplanes)
    model.layer1 = model._make_layer(block, scaled(64), 3)
    model.layer2 = model._make_layer(block, scaled(128), 4, stride=2)
    model.layer3 = model._make_layer(block, scaled(256), 6, stride=2)
    model.layer4 = model._make_layer(block, scaled(512), 3, stride=2)
    model.fc = nn.Linear(scaled(512) * block.expansion, n_classes)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(module, nn.BatchNorm2d):
            nn.init.ones_(module.weight)
            nn.init.zeros_(module.bias)
    for block_ in model.modules():
        if isinstance(block_, block):
            nn.init.zeros_(block_.bn3.weight)


def build_efficientnet_b0(n_classes: int, in_channels: int, width: float = 1.0,
                          stem_stride: int = 2, dropout: float = 0.2,
                          stochastic_depth: float = 0.2) -> nn.Module:
    """EfficientNet-B0 (width multiplier ``width``, depth 1.0); stem_stride 2, dropout 0.2 and
    stochastic depth 0.2 (the largest per-block drop probability) are the original's. A short
    from-scratch run underfits (train accuracy no higher than validation): quick turns both down."""
    setting, last = tv_eff._efficientnet_conf("efficientnet_b0", width_mult=width, depth_mult=1.0)
    model = tv_eff.EfficientNet(setting, dropout=dropout, stochastic_depth_prob=stochastic_depth,
                                last_channel=last, num_classes=n_classes)
    conv = model.features[0][0]
    model.features[0][0] = nn.Conv2d(in_channels, conv.out_channels, 3, stride=stem_stride,
                                     padding=1, bias=False)
    # torchvision's head init (uniform +-1/sqrt(n_classes) over 1280 features) starts with
    # logits of std ~3.5 (loss ~4.5 for 7 classes); from scratch it then stalls at the
    # majority class. torchvision's VGG head init (std 0.01) starts near uniform probabilities.
    head = model.classifier[-1]
    nn.init.normal_(head.weight, 0.0, 0.01)
    nn.init.zeros_(head.bias)
    return model


def build_model(name: str, n_classes: int, in_channels: int = 1, width: float = 1.0,
                stem_stride: int | None = None, dropout: float | None = None,
                stochastic_depth: float | None = None) -> nn.Module:
    """A model of ``MODEL_NAMES`` with random weights; ``stem_stride``, ``dropout`` (head) and
    ``stochastic_depth`` (EfficientNet) None = the original's."""
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown CNN {name!r}; known: {MODEL_NAMES}")
    if name == "resnet50" and dropout is not None or name != "efficientnet_b0" and stochastic_depth is not None:
        raise ValueError(f"{name} has no {'dropout' if name == 'resnet50' else 'stochastic depth'} to set")
    if name.startswith("vgg19"):
        return build_vgg19(n_classes, in_channels, name.endswith("_bn"), width, stem_stride or 1,
                           0.3 if dropout is None else dropout)
    if name == "resnet50":
        return build_resnet50(n_classes, in_channels, stem_stride or 4, width)
    return build_efficientnet_b0(n_classes, in_channels, width, stem_stride or 2,
                                 0.2 if dropout is None else dropout,
                                 0.2 if stochastic_depth is None else stochastic_depth)


def load_imagenet_weights(model: nn.Module, name: str, mode: str = "auto") -> WeightsStatus:
    """Copy torchvision ImageNet weights into ``model`` wherever the shapes match (the stem
    and head adapted to faces keep their random init). The file comes through emolib's
    downloader (``emolib.vlm.fetch.ensure_weight``: resumable, verified, from
    ``EMOLIB_WEIGHTS_MIRROR`` when set; ``mode`` offline never downloads); when it cannot be
    had this returns ``used="scratch"`` with the reason and the fetch command."""
    import torch

    from emolib.vlm.fetch import ensure_weight
    from emolib.vlm.types import ModelUnavailable
    from emolib.vlm.weights import torchvision_weight

    weight = torchvision_weight(name)
    try:
        path = ensure_weight(weight, f"ImageNet weights {weight.name} are not here", mode)[0]
    except ModelUnavailable as err:
        return WeightsStatus(name, "imagenet", "scratch", str(err))
    state = torch.load(path, map_location="cpu", weights_only=True)
    own = model.state_dict()
    matched = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(matched, strict=False)
    return WeightsStatus(name, "imagenet", "imagenet", f"{len(matched)}/{len(own)} tensors from {weight.name}")


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
