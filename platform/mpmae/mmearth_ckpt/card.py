"""The model card of an imported checkpoint: where it came from, and how it runs here."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from mpmae.model import EncoderConfig

BEHAVIOUR = (
    "the authors' sparse pretraining network, densely: the 3×3 stem conv is padded (a "
    "submanifold sparse conv on a full image), the stem's depthwise conv is unpadded, "
    "GRN has eps 1e-6 and per-sample statistics"
)


def import_card(config: EncoderConfig, metadata: Mapping[str, Any]) -> str:
    """README.md for the release folder of an imported checkpoint."""
    source, bands = metadata["source"], ", ".join(metadata["input_bands"])
    named = source.get("dataset")
    origin = (f"pretext `{source['pretext']}` on {source['dataset']}, "
              f"{source['loss_weighting']} loss weighting, {source['image_size']} px crops"
              if named else "the name is not one of the authors' standard names, so the "
                            "pretraining set is not recorded")
    stats = metadata["normalisation"]
    norm = (f"the L1C/L2A statistics of `{stats['from']}` (in `config.json`)" if "from" in stats
            else "not included. " + stats["missing"])
    return f"""# MMEarth MP-MAE encoder: ConvNeXt V2 {config.size} (imported)

Imported by `mpmae import-mmearth` from the MMEarth authors' pretraining checkpoint
`{source["file"]}` (name `{source["name"]}`, SHA-256 `{source["sha256"]}`) of
vishalned/MMEarth-train (paper: arXiv 2405.02771). The weights are the authors'; see their
repository for the terms they are published under.

- run: {origin}
- architecture: stem `{config.stem}`, patch size {config.patch_size}, {config.in_chans}
  input channels; the final LayerNorm of the pooled embedding is not in the checkpoint and
  starts as the identity (weight 1, bias 0), as in the authors' downstream model
- input bands, in this order: {bands}
- normalisation: {norm}

## How it runs here

The encoder computes {BEHAVIOUR}. Those are the weights' training conditions. The
authors' *downstream* dense model differs: its 3×3 stem conv is unpadded (56 px → 54), its
depthwise stem conv is padded by f//2 (patch 16), and its GRN eps is 1e-4; so features and
scores here can differ slightly from the paper's tables. Pixels whose every band is exactly
0 were absent from the sparse network; here they are zero-valued input.

```sh
mpmae evaluate path/to/this/folder GEO_BENCH_DATASET --protocol linear
```

```python
import mpmae

encoder = mpmae.load_encoder("path/to/this/folder")
embedding = encoder.embed(x)  # (B, {config.in_chans}, H, W), H, W multiples of {config.patch_size}
```
"""
