"""The MMEarth authors' encoder, re-implemented for the import tests from their code
(vishalned/MMEarth-train models/convnextv2.py, convnextv2_sparse.py, norm_layers.py,
helpers.remap_checkpoint_keys), and their checkpoint layout written from its weights.

``ReferenceConvNeXtV2`` is the reference's dense ConvNeXt V2 with its module names
(``initial_conv``, ``stem``, ``stem_orig``, ``downsample_layers``, ``stages``, blocks with
``dwconv``/``norm``/``pwconv1``/``grn``/``pwconv2``, GRN γ/β of shape (1, 1, 1, C)). The
stem padding and GRN eps are arguments: (1, 1e-6) is the sparse pretraining network run on
a full image, (0, 1e-4) the authors' downstream model.
"""

from __future__ import annotations

import argparse
import math
import pathlib

import torch
from torch import Tensor, nn


class ChannelsFirstLN(nn.Module):
    def __init__(self, dim: int) -> None:
        super().__init__()
        self.weight, self.bias = nn.Parameter(torch.ones(dim)), nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)
        x = (x - u) / torch.sqrt(s + 1e-6)
        return self.weight[:, None, None] * x + self.bias[:, None, None]


class GRN(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.zeros(1, 1, 1, dim))
        self.beta = nn.Parameter(torch.zeros(1, 1, 1, dim))

    def forward(self, x: Tensor) -> Tensor:
        gx = torch.norm(x, p=2, dim=(1, 2), keepdim=True)
        nx = gx / (gx.mean(dim=-1, keepdim=True) + self.eps)
        return self.gamma * (x * nx) + self.beta + x


class Block(nn.Module):
    def __init__(self, dim: int, eps: float) -> None:
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.grn = GRN(4 * dim, eps)
        self.pwconv2 = nn.Linear(4 * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        y = self.norm(self.dwconv(x).permute(0, 2, 3, 1))
        y = self.pwconv2(self.grn(self.act(self.pwconv1(y))))
        return x + y.permute(0, 3, 1, 2)


class ReferenceConvNeXtV2(nn.Module):
    def __init__(self, depths, dims, in_chans: int, patch_size: int, orig_stem: bool = False,
                 stem_padding: int = 1, grn_eps: float = 1e-6) -> None:
        super().__init__()
        f = patch_size // 8
        self.orig_stem = orig_stem
        if orig_stem:
            self.stem_orig = nn.Sequential(nn.Conv2d(in_chans, dims[0], f, stride=f),
                                           ChannelsFirstLN(dims[0]))
        else:
            self.initial_conv = nn.Sequential(
                nn.Conv2d(in_chans, dims[0], 3, padding=stem_padding), ChannelsFirstLN(dims[0]),
                nn.GELU())
            self.stem = nn.Sequential(nn.Conv2d(dims[0], dims[0], f, stride=f, groups=dims[0]),
                                      ChannelsFirstLN(dims[0]))
        self.downsample_layers = nn.ModuleList(
            nn.Sequential(ChannelsFirstLN(dims[i]), nn.Conv2d(dims[i], dims[i + 1], 2, stride=2))
            for i in range(3))
        self.stages = nn.ModuleList(nn.Sequential(*[Block(dims[i], grn_eps)
                                                    for _ in range(depths[i])])
                                    for i in range(4))
        self.norm = nn.LayerNorm(dims[-1], eps=1e-6)

    def forward_maps(self, x: Tensor) -> list[Tensor]:
        x = self.stem_orig(x) if self.orig_stem else self.stem(self.initial_conv(x))
        maps = [self.stages[0](x)]
        for i in range(3):
            maps.append(self.stages[i + 1](self.downsample_layers[i](maps[-1])))
        return maps

    def forward_features(self, x: Tensor) -> Tensor:
        return self.norm(self.forward_maps(x)[-1].mean([-2, -1]))


def randomise(model: nn.Module, seed: int = 0) -> nn.Module:
    """Every parameter random (norms, GRN and biases too), so no layout error can hide."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.startswith("norm."):
                continue  # not in the checkpoint: stays LN(1, 0) in both models
            layer_norm_weight = p.ndim == 1 and name.endswith("weight")
            scale = 0.2 if p.ndim == 4 else 0.5
            p.copy_(torch.randn(p.shape, generator=g) * scale + float(layer_norm_weight))
    return model


def minkowski_conv(weight: Tensor) -> Tensor:
    """MinkowskiConvolution.kernel (k·k, in, out); a 1×1 stride-1 kernel is (in, out)."""
    out, inp, k, _ = weight.shape
    if k == 1:
        return weight[:, :, 0, 0].T.clone()
    return weight.transpose(2, 3).reshape(out, inp, k * k).permute(2, 1, 0).contiguous()


def minkowski_depthwise(weight: Tensor) -> Tensor:
    """MinkowskiDepthwiseConvolution.kernel (k·k, C)."""
    c, _, k, _ = weight.shape
    return weight.transpose(2, 3).reshape(c, k * k).T.contiguous()


def authors_remap_conv(kernel: Tensor) -> Tensor:
    """helpers.remap_checkpoint_keys on a 3-D kernel, verbatim in effect."""
    kv, in_dim, out_dim = kernel.shape
    ks = int(math.sqrt(kv))
    return kernel.permute(2, 1, 0).reshape(out_dim, in_dim, ks, ks).transpose(3, 2)


def sparse_state_dict(model: ReferenceConvNeXtV2) -> dict[str, Tensor]:
    """The FCMAE checkpoint's ``encoder.*`` tensors for ``model``'s weights, in the
    MinkowskiEngine names and layouts of the sparse encoder."""
    out = {}
    for name, value in model.state_dict().items():
        if name.startswith("norm."):
            continue  # the sparse encoder has no final norm
        module = name.rsplit(".", 1)[0]
        layer = model.get_submodule(module)
        if isinstance(layer, nn.Conv2d) and name.endswith("weight"):
            depthwise = layer.groups > 1
            key, value = module + ".kernel", (minkowski_depthwise(value) if depthwise
                                              else minkowski_conv(value))
        elif isinstance(layer, nn.Conv2d | GRN):
            key, value = name, value.reshape(1, -1)  # biases, γ, β: (1, C)
        elif isinstance(layer, nn.Linear):
            key = f"{module}.linear.{name.rsplit('.', 1)[1]}"
        else:  # LayerNorms wrapped as MinkowskiLayerNorm(.ln)
            key = f"{module}.ln.{name.rsplit('.', 1)[1]}"
        out["encoder." + key] = value.clone()
    return out


def authors_checkpoint(model: ReferenceConvNeXtV2) -> dict:
    """A file as MMEarth-train's save_model writes it: model (encoder + decoder parts),
    optimizer state, epoch, scaler and the training arguments as a Namespace."""
    state = sparse_state_dict(model)
    state |= {"proj.weight": torch.randn(8, 320, 1, 1), "proj.bias": torch.zeros(8),
              "mask_token": torch.zeros(1, 8, 1, 1),
              "decoder_dict.sentinel2.0.dwconv.weight": torch.randn(8, 1, 7, 7),
              "pred_dict.sentinel2.weight": torch.randn(768, 8, 1, 1)}
    args = argparse.Namespace(model="convnextv2_atto", patch_size=8, input_size=56,
                              loss_aggr="uncertainty", data_dir=pathlib.PosixPath("/data"))
    return {"model": state, "optimizer": {"state": {}, "param_groups": []}, "epoch": 199,
            "scaler": {}, "args": args}


def features(model: ReferenceConvNeXtV2, x: Tensor) -> tuple[list[Tensor], Tensor]:
    with torch.no_grad():
        return model.forward_maps(x), model.forward_features(x)

