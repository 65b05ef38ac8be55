"""Frontends, backbones and the one LightningModule that trains them."""
