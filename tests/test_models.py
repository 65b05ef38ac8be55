"""Every model in conf/model/*.yaml: output shapes on variable lengths, padding kept out of the result."""

from __future__ import annotations

import pytest
import torch
from hydra.utils import instantiate

from .conftest import CONF, alone_and_batched, compose_cfg, model_overrides

MODELS = sorted(p.stem for p in CONF.glob("model/*.yaml"))


def build(model: str, tiny_pretrained):
    return instantiate(compose_cfg(model_overrides(model, tiny_pretrained)).model.net, num_classes=8).eval()


@pytest.mark.parametrize("model", MODELS)
def test_shapes_and_padding_invariance(model, tiny_pretrained):
    torch.manual_seed(0)
    batched, alone = alone_and_batched(build(model, tiny_pretrained), [12_000, 27_000, 40_000])
    assert batched.shape == (3, 8)
    assert torch.isfinite(batched).all()
    torch.testing.assert_close(batched.softmax(-1), alone.softmax(-1), atol=1e-3, rtol=0)


@pytest.mark.parametrize("model", MODELS)
def test_very_short_clip(model, tiny_pretrained):
    net = build(model, tiny_pretrained)
    with torch.no_grad():
        out = net(torch.randn(2, 1600) * 0.1, torch.tensor([1600, 400]))
    assert out.shape == (2, 8) and torch.isfinite(out).all()
