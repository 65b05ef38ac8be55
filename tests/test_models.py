"""Every model in conf/model/*.yaml: output shapes on variable lengths, padding kept out of the result."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra.errors import InstantiationException
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


@pytest.mark.parametrize("model", ["cnn1d", "cnn2d", "resnet2d"])
def test_attentive_pooling_keeps_padding_out(model):
    torch.manual_seed(0)
    net = instantiate(compose_cfg([f"model={model}", "model.net.pool=attentive"]).model.net, num_classes=8).eval()
    batched, alone = alone_and_batched(net, [12_000, 27_000, 40_000])
    torch.testing.assert_close(batched.softmax(-1), alone.softmax(-1), atol=1e-3, rtol=0)
    with pytest.raises(InstantiationException, match="pooling must be"):
        instantiate(compose_cfg([f"model={model}", "model.net.pool=max"]).model.net, num_classes=8)


def test_mixup_blends_the_frontend_output():
    from ser_bench.models.module import SERModule

    net = instantiate(compose_cfg(["model=cnn1d"]).model.net, num_classes=8)
    module = SERModule(net, [str(i) for i in range(8)], mixup=0.4)
    seen = []
    net.frontend.register_forward_hook(lambda m, a, out: seen.append(out[0].detach().clone()))
    wave, lengths = torch.randn(4, 16_000) * 0.1, torch.tensor([16_000, 12_000, 8_000, 16_000])
    clean, frames = net.frontend(wave, lengths)
    seen.clear()
    perm, lam = torch.tensor([2, 0, 3, 1]), 0.3
    module._mix = (perm, lam)
    module(wave, lengths)
    torch.testing.assert_close(seen[-1], lam * clean + (1 - lam) * clean[perm])  # a later hook sees the blend
    module._mix = None
    with pytest.raises(ValueError, match="mixup must be >= 0"):
        SERModule(net, ["a", "b"], mixup=-1)


@pytest.mark.parametrize("model", MODELS)
def test_very_short_clip(model, tiny_pretrained):
    net = build(model, tiny_pretrained)
    with torch.no_grad():
        out = net(torch.randn(2, 1600) * 0.1, torch.tensor([1600, 400]))
    assert out.shape == (2, 8) and torch.isfinite(out).all()


def test_cached_log_mel_matches_the_frontend(tmp_path):
    """Cached raw log-mel, cropped, masked and normalised per batch, scores as the waveform path does: exactly for
    every clip padded in its batch, and within float noise at the last frames of the batch's longest clip (whose
    end the STFT reflects where the cache sees silence)."""
    from ser_bench.data.padding import pad
    from ser_bench.models.features import cached_log_mel
    from ser_bench.models.frontends import LogMel

    rng = np.random.default_rng(0)
    waves = [rng.standard_normal(n).astype(np.float32) * 0.1 for n in (16_000, 23_456, 40_000, 8_000)]
    frontend = LogMel()
    feats = cached_log_mel(frontend, waves, "clips", tmp_path, batch_size=3)
    assert [f.shape for f in feats] == [(n // 160 + 1, 64) for n in (16_000, 23_456, 40_000, 8_000)]
    assert list((tmp_path / "log_mel").iterdir())  # stored, memory-mapped on the next call
    again = cached_log_mel(frontend, waves, "clips", tmp_path)
    assert all(np.array_equal(a, b) for a, b in zip(feats, again))
    from_waves, frames = frontend(*pad(waves))
    frontend.precomputed = True
    from_cache, cached_frames = frontend(*pad(feats))
    assert torch.equal(frames, cached_frames)
    for i in (0, 1, 3):
        torch.testing.assert_close(from_cache[i], from_waves[i], atol=1e-5, rtol=0)
    torch.testing.assert_close(from_cache[2, :, :-3], from_waves[2, :, :-3], atol=1e-2, rtol=0)


def test_log_mel_band_normalisation_uses_each_clips_own_valid_frames():
    from ser_bench.models.frontends import LogMel

    torch.manual_seed(0)
    wave, lengths = torch.randn(2, 32_000) * 0.1, torch.tensor([32_000, 20_000])
    wave[1, 20_000:] = 0
    feats, frames = LogMel(norm="bins")(wave, lengths)
    for i in range(2):
        valid = feats[i, :, : frames[i]]
        torch.testing.assert_close(valid.mean(dim=1), torch.zeros(64), atol=1e-4, rtol=0)
        torch.testing.assert_close(valid.std(dim=1, unbiased=False), torch.ones(64), atol=1e-3, rtol=0)
    assert feats[1, :, frames[1]:].abs().max() == 0
    alone, _ = LogMel(norm="bins")(wave[1:, :20_400], lengths[1:])  # the same zeros after the clip: the same frames
    torch.testing.assert_close(alone[0, :, : frames[1]], feats[1, :, : frames[1]], atol=1e-4, rtol=0)


def test_log_mel_stays_float32_under_bf16_autocast():
    """`trainer.precision=bf16-mixed` autocasts the network; the features must not be rounded to bf16 with it
    (without the guard the log-mel itself comes out in bf16, 8-bit mantissas)."""
    from ser_bench.models.frontends import LogMel

    torch.manual_seed(0)
    wave, lengths = torch.randn(2, 16_000) * 0.1, torch.tensor([16_000, 12_000])
    frontend = LogMel()
    expected, _ = frontend(wave, lengths)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        feats, _ = frontend(wave, lengths)
    assert feats.dtype == torch.float32
    torch.testing.assert_close(feats, expected, atol=0, rtol=0)


def test_resnet2d_rejects_an_empty_stage():
    with pytest.raises(InstantiationException, match="at least one channel width and one block"):
        instantiate(compose_cfg(["model=resnet2d", "model.net.blocks=0"]).model.net, num_classes=8)


def test_speaker_normalisation_uses_each_speakers_own_clips():
    from ser_bench.models.features import speaker_normalised

    rng = np.random.default_rng(0)
    speakers = ["a", "b", "a", "b"]
    table = [rng.normal(loc, scale, (n, 3)).astype(np.float32)
             for loc, scale, n in ((5, 2, 40), (-3, 1, 30), (5, 2, 20), (-3, 1, 10))]
    copies = [t + 100 for t in table]  # offline copies: normalised with their source speaker's statistics
    out = speaker_normalised(table + copies, speakers)
    for speaker in "ab":
        frames = np.concatenate([out[i] for i in range(4) if speakers[i] == speaker])
        np.testing.assert_allclose(frames.mean(0), 0, atol=1e-5)
        np.testing.assert_allclose(frames.std(0), 1, atol=1e-4)
    a = np.concatenate([table[0], table[2]]).astype(np.float64)
    np.testing.assert_allclose(out[4], (copies[0] - a.mean(0)) / (a.std(0) + 1e-5), rtol=1e-5)
    with pytest.raises(ValueError, match="not a whole number"):
        speaker_normalised(table[:3], speakers[:2])


@pytest.mark.parametrize("model", ["cnn2d", "resnet2d"])
def test_2d_weights_are_channels_last_with_unchanged_outputs(model):
    from ser_bench.models.module import SERModule

    torch.manual_seed(0)
    net = instantiate(compose_cfg([f"model={model}"]).model.net, num_classes=8).eval()
    wave, lengths = torch.randn(3, 24_000) * 0.1, torch.tensor([24_000, 16_000, 9_000])
    with torch.no_grad():
        before = net(wave, lengths)
        module = SERModule(net, [str(i) for i in range(8)]).eval()
        after = module(wave, lengths)
    convs = [m.weight for m in module.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert any(not w.is_contiguous() for w in convs)  # (a 1-channel or 1x1 kernel is contiguous either way)
    torch.testing.assert_close(after, before, atol=1e-5, rtol=1e-5)


def test_step_benchmark_starts(capsys):
    """Only that it runs end to end on a tiny batch; the figures come from deliberate runs."""
    from ser_bench.bench.__main__ import main

    main(["step", "--models", "cnn2d", "--rounds", "1", "--batch", "2", "--seconds", "0.5"])
    out = capsys.readouterr().out
    assert "channels-last + bf16" in out and "NCHW time / channels-last" in out and "bfloat16 units" in out


def test_speaker_adversary_reverses_its_gradient_into_the_network():
    from ser_bench.models.module import SERModule

    torch.manual_seed(0)
    net = instantiate(compose_cfg(["model=cnn1d"]).model.net, num_classes=8)
    speaker_of_row = torch.tensor([0, 1, 2, 0, 1, 2, -1, -1])
    module = SERModule(net, [str(i) for i in range(8)], speaker_adversarial=0.7, speaker_of_row=speaker_of_row)
    module._adversary_scale = lambda: 0.7
    wave, lengths, rows = torch.randn(4, 16_000) * 0.1, torch.tensor([16_000, 12_000, 8_000, 16_000]), torch.arange(4)
    module.eval()  # no dropout: both passes below compute the same function

    def gradients(loss_of):
        module.zero_grad()
        module(wave, lengths)
        loss_of().backward()
        return ([p.grad.clone() for p in net.blocks.parameters()],
                [p.grad.clone() for p in module.adversary.parameters()])

    plain = torch.nn.functional.cross_entropy
    reversed_net, reversed_adv = gradients(lambda: module._speaker_loss(rows, None, 1.0))
    assert module._embedding is None  # used once, not kept past the step
    direct_net, direct_adv = gradients(lambda: plain(module.adversary(module._embedding), speaker_of_row[rows]))
    for got, want in zip(reversed_adv, direct_adv):  # the adversary itself learns the speakers
        torch.testing.assert_close(got, want)
    for got, want in zip(reversed_net, direct_net):  # the network below the head gets -0.7 times that gradient
        torch.testing.assert_close(got, -0.7 * want)
    assert any(g.abs().sum() > 0 for g in direct_net)
    with pytest.raises(ValueError, match="at least two"):
        SERModule(net, ["a", "b"], speaker_adversarial=0.5, speaker_of_row=torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="speaker_adversarial must be >= 0"):
        SERModule(net, ["a", "b"], speaker_adversarial=-1)


def test_train_loss_is_the_emotion_loss_alone_with_an_adversary():
    """train/loss is drawn against val/loss in every run's curves, so the adversary's speaker loss, which the
    network is trained on too, stays out of it."""
    from ser_bench.models.module import SERModule

    torch.manual_seed(0)
    net = instantiate(compose_cfg(["model=cnn1d"]).model.net, num_classes=8)
    module = SERModule(net, [str(i) for i in range(8)], speaker_adversarial=0.7,
                       speaker_of_row=torch.tensor([0, 1, 2, 0, 1, 2]))
    module._adversary_scale = lambda: 0.7
    module.log = lambda *args, **kwargs: None  # no trainer here
    module.eval()  # no dropout: the forward below computes the same logits
    batch = {"wave": torch.randn(4, 16_000) * 0.1, "lengths": torch.full((4,), 16_000),
             "label": torch.tensor([0, 3, 5, 7]), "row": torch.arange(4)}
    total = module.training_step(batch, 0)
    with torch.no_grad():
        emotion = torch.nn.functional.cross_entropy(module(batch["wave"], batch["lengths"]), batch["label"])
    torch.testing.assert_close(module.train_loss.compute(), emotion)
    assert total.item() > emotion.item() + 0.5  # the speaker loss (3 speakers: about ln 3) is in what is trained


@pytest.mark.parametrize("model", ["cnn1d", "wav2vec2"])  # wav2vec2 sets its own optimiser groups
def test_speaker_adversary_is_optimised(model, tiny_pretrained):
    from ser_bench.models.module import SERModule

    module = SERModule(build(model, tiny_pretrained), [str(i) for i in range(8)], scheduler="none",
                       speaker_adversarial=0.5, speaker_of_row=torch.tensor([0, 1, -1]))
    optimised = {id(p) for group in module.configure_optimizers().param_groups for p in group["params"]}
    assert all(id(p) in optimised for p in module.adversary.parameters())


def test_validation_predictions_are_kept_from_the_best_epoch():
    """A run logs its validation clips' probabilities from the epoch whose checkpoint it tests: the first
    maximum of validation UA, not the last epoch."""
    import lightning as L

    from ser_bench.models.module import SERModule

    class Fixed(torch.nn.Module):  # logits = the clip's first samples; `quality` picks how many clips come out right
        def __init__(self):
            super().__init__()
            self.quality = torch.nn.Parameter(torch.tensor(1.0))

        def forward(self, wave, lengths):
            return wave[:, :4] * self.quality

    truth = torch.arange(8) % 4
    right = torch.nn.functional.one_hot(truth, 4).float()
    batch = {"wave": right, "lengths": torch.full((8,), 4), "label": truth, "row": torch.arange(100, 108)}
    module = SERModule(Fixed(), list("abcd"))
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False)
    for quality in (1.0, -1.0, 1.0, 2.0):  # UA 1, 0, 1 (a tie: not a new best), 1 (a tie)
        module.net.quality.data.fill_(quality)
        module.train_acc.update(torch.zeros(1, 4), torch.zeros(1, dtype=torch.long))  # a training epoch ran
        module.train_loss.update(torch.tensor(1.0))
        trainer.validate(module, dataloaders=torch.utils.data.DataLoader([batch], batch_size=None), verbose=False)
    assert [h["val/ua"] for h in module.history] == [1.0, 0.0, 1.0, 1.0]
    rows, labels, probs = zip(*module.val_predictions)
    assert list(rows) == list(range(100, 108)) and list(labels) == truth.tolist()
    torch.testing.assert_close(torch.tensor(probs), right.softmax(-1))  # the first epoch's (quality 1), not the last


def test_ema_evaluates_the_moving_average_of_the_weights_and_buffers():
    """With `ema`, training runs the live weights and evaluation their moving average, updated per step:
    the first step copies, each later one moves the average by (1 - ema) toward the live weights."""
    from ser_bench.models.module import SERModule

    class Tiny(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin, self.norm = torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4)

        def forward(self, wave, lengths):
            return self.norm(self.lin(wave))

    module = SERModule(Tiny(), list("abcd"), ema=0.75, scheduler="none")
    snapshots = []
    for value in (1.0, 3.0, 5.0):  # three optimiser steps' live weights and running means
        module.net.lin.weight.data.fill_(value)
        module.net.norm.running_mean.fill_(-value)
        module.on_train_batch_end(None, None, 0)
        snapshots.append(value)
    expected = snapshots[0]
    for value in snapshots[1:]:
        expected = 0.75 * expected + 0.25 * value  # 1, 1.5, 2.125
    averaged = module.ema_net.module
    assert torch.allclose(averaged.lin.weight, torch.full((4, 4), expected))
    assert torch.allclose(averaged.norm.running_mean, torch.full((4,), -expected))
    assert torch.equal(module.net.lin.weight, torch.full((4, 4), 5.0))  # the live weights are untouched
    x = torch.randn(3, 4)
    module.eval()
    assert torch.equal(module(x, None), averaged(x, None)) and not torch.equal(module(x, None), module.net(x, None))
    module.train()
    module.net.norm.eval(), averaged.norm.eval()  # compare without updating the running statistics
    assert torch.equal(module(x, None), module.net(x, None))
    assert not any(p.requires_grad for p in averaged.parameters())  # never optimised
    optimised = {id(p) for g in module.configure_optimizers().param_groups for p in g["params"]}
    assert optimised == {id(p) for p in module.net.parameters()}
    with pytest.raises(ValueError, match="ema must be in"):
        SERModule(Tiny(), list("abcd"), ema=1.0)


@pytest.mark.parametrize("model", MODELS)
def test_every_model_satisfies_the_contract(model, tiny_pretrained):
    """ser_bench/models/base.py: what training, the caches, ensembles and inference rely on, checked by running."""
    from ser_bench.models import base

    net = build(model, tiny_pretrained)
    assert base.check(net, 8, forward=True) is net
    if base.is_encoder(net):
        assert net.mode in base.ENCODER_MODES and net.weights_id() is not None
        assert net.provenance()["pretrained"] == "true" and net.features_id() == net.weights_id() or model == "crepe"
    elif base.is_fitted(net):  # a classic baseline: no gradient training, features outside torch
        assert not any(p.requires_grad for p in net.parameters()) and net.functionals.size in (88, 6373)
    else:
        assert base.is_log_mel(net) and net.frontend.n_mels == 64


def test_contract_names_what_is_missing():
    from torch import nn

    from ser_bench.models import base

    class NoHead(nn.Module):
        def forward(self, wave, lengths):
            return wave[:, :8]

    class WrongHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Linear(4, 5)

    with pytest.raises(base.ContractError, match="`head` must be a module holding at least one nn.Linear"):
        base.check(NoHead(), 8)
    with pytest.raises(base.ContractError, match="5 outputs, not num_classes=8"):
        base.check(WrongHead(), 8)
    net = build("cnn1d", {})
    del net.frontend.n_mels
    with pytest.raises(base.ContractError, match="`frontend` lacks n_mels"):
        base.check(net, 8)
