"""Full fine-tuning protocols of ``mpmae evaluate``: every layer trained on raw samples
(a linear head for classification, a U-Net decoder for segmentation), resumable."""
