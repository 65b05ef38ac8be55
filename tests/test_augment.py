"""Augmentation: each transform does what its name says, deterministically; offline copies are cached
by content; validation and test clips are never augmented."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hydra.utils import instantiate

from ser_bench import train
from ser_bench.augment import Augmentation
from ser_bench.augment.gain import Gain
from ser_bench.augment.noise import Noise
from ser_bench.augment.offline import offline_copies
from ser_bench.augment.pitch import Pitch
from ser_bench.augment.specaugment import SpecAugment
from ser_bench.augment.speed import Speed
from ser_bench.augment.stretch import Stretch
from ser_bench.data.datamodule import SERDataModule
from ser_bench.data.splits import Split
from ser_bench.errors import UserError

from .conftest import CONF, compose_cfg

SR = 16_000
AUGMENTS = sorted(p.stem for p in CONF.glob("augment/*.yaml"))


def tone(hz: float = 200.0, seconds: float = 1.0) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    return 0.5 * torch.sin(2 * torch.pi * hz * t)


def peak_hz(wave: torch.Tensor) -> float:
    n = len(wave) // 2 * 2
    spectrum = torch.fft.rfft(wave[:n] * torch.hann_window(n)).abs()
    return float(spectrum.argmax()) * SR / n


def rng(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_speed_changes_tempo_and_pitch_together():
    out = Speed(factor=(1.1, 1.1))(tone(), rng())
    assert len(out) == pytest.approx(SR / 1.1, abs=2)
    assert peak_hz(out) == pytest.approx(220, abs=3)


def test_stretch_changes_tempo_keeps_pitch():
    out = Stretch(rate=(1.25, 1.25))(tone(), rng())
    assert len(out) == round(SR / 1.25)
    assert peak_hz(out) == pytest.approx(200, abs=3)


@pytest.mark.parametrize("semitones", [-2.0, 2.0])
def test_pitch_changes_pitch_keeps_tempo(semitones):
    out = Pitch(semitones=(semitones, semitones))(tone(), rng())
    assert len(out) == SR
    assert peak_hz(out[2000:-2000]) == pytest.approx(200 * 2 ** (semitones / 12), rel=0.02)


def test_noise_hits_the_drawn_snr_and_gain_the_drawn_level():
    clean = tone(seconds=2.0)
    noisy = Noise(snr_db=(10.0, 10.0))(clean, rng())
    snr = 10 * torch.log10(clean.pow(2).mean() / (noisy - clean).pow(2).mean())
    assert float(snr) == pytest.approx(10.0, abs=0.3)
    louder = Gain(gain_db=(6.0, 6.0))(clean, rng())
    assert float(louder.abs().max() / clean.abs().max()) == pytest.approx(10 ** (6 / 20), rel=1e-4)


def test_probability_zero_is_identity_and_draws_are_seeded():
    wave = tone()
    assert torch.equal(Noise(p=0.0)(wave, rng()), wave)
    aug = Augmentation("x", transforms={"speed": Speed(), "noise": Noise()})
    a, b, c = aug(wave, aug.generator(3, 0)), aug(wave, aug.generator(3, 0)), aug(wave, aug.generator(3, 1))
    assert torch.equal(a, b)
    assert len(a) != len(c) or not torch.equal(a, c)


@pytest.mark.parametrize("name", AUGMENTS)
def test_every_augment_config_builds_and_runs(name):
    aug = instantiate(compose_cfg([f"augment={name}"]).augment)
    assert aug.name == name
    out = aug(tone(), aug.generator(0, 0))
    assert out.dtype == torch.float32 and torch.isfinite(out).all() and 0.7 * SR < len(out) < 1.3 * SR


@pytest.mark.parametrize("override, needle", [
    ("augment.transforms.noise.snr_db=[30,10]", "low <= high"),
    ("augment.transforms.noise.p=1.5", "p must lie within"),
    ("augment.mode=sometimes", "augment.mode must be one of"),
])
def test_bad_settings_are_user_errors(override, needle):
    with pytest.raises(UserError, match=needle):
        train.build(compose_cfg(["augment=noise", override]).augment, "augment")


def test_specaugment_masks_inside_valid_frames_and_only_in_training():
    feats = torch.randn(2, 64, 100)
    frames = torch.tensor([100, 50])
    feats[1, :, 50:] = 0
    out = SpecAugment(time_masks=3, time_width=20, freq_masks=2, freq_width=8)(feats, frames)
    assert (out == 0).any(dim=1)[:, :50].any()  # some time steps masked
    assert torch.equal(out[1, :, 50:], feats[1, :, 50:])

    net = instantiate(compose_cfg(["model=cnn1d"]).model.net, num_classes=8)
    Augmentation("s", transforms={"s": SpecAugment(time_masks=5, time_width=50)}).attach(net)
    wave, lengths = torch.randn(2, SR), torch.tensor([SR, SR])
    net.eval()
    assert torch.equal(net.frontend(wave, lengths)[0], net.frontend(wave, lengths)[0])
    net.train()
    assert not torch.equal(net.frontend(wave, lengths)[0], net.frontend(wave, lengths)[0])
    with pytest.raises(UserError, match="log-mel frontend"):
        Augmentation("s", transforms={"s": SpecAugment()}).attach(torch.nn.Linear(2, 2))


def test_offline_copies_are_cached_by_content(tmp_path, monkeypatch):
    waves = [tone(200).numpy(), tone(300, 0.5).numpy()]
    aug = Augmentation("sp", copies=2, transforms={"speed": Speed()})
    first = offline_copies(waves, "audiokey", aug, tmp_path)
    assert len(first) == 4
    import ser_bench.augment.offline as offline

    monkeypatch.setattr(offline, "make_copies", lambda *a: pytest.fail("cache miss: copies made twice"))
    again = offline_copies(waves, "audiokey", aug, tmp_path)
    assert all(np.array_equal(a, b) for a, b in zip(first, again))
    monkeypatch.undo()
    other = offline_copies(waves, "audiokey", Augmentation("sp", copies=2, seed=1, transforms={"speed": Speed()}),
                           tmp_path)
    assert not all(len(a) == len(b) and np.array_equal(a, b) for a, b in zip(first, other))


def _split() -> Split:
    return Split("t", 0, np.arange(0, 4), np.arange(4, 6), np.arange(6, 8))


def _batches(loader):
    return [w[:n] for batch in loader for w, n in zip(batch["wave"], batch["lengths"])]


def _rows(loader):
    return [int(r) for batch in loader for r in batch["row"]]


@pytest.mark.parametrize("mode", ["offline", "online"])
def test_validation_and_test_clips_are_never_augmented(mode):
    waves = [tone(150 + 20 * i).numpy() for i in range(8)]
    aug = Augmentation("n", mode=mode, transforms={"noise": Noise(snr_db=(0.0, 0.0)), "speed": Speed()})
    copies = [aug(torch.from_numpy(w), aug.generator(i, 0)).numpy() for i, w in enumerate(waves)]
    dm = SERDataModule(waves, list(range(8)), _split(), batch_size=3, copies=copies if mode == "offline" else None,
                       online=aug if mode == "online" else None)
    for loader, rows in ((dm.val_dataloader(), [4, 5]), (dm.test_dataloader(), [6, 7])):
        assert _rows(loader) == rows
        for row, wave in zip(rows, _batches(loader)):
            assert torch.equal(wave, torch.from_numpy(waves[row]))
    train = dm.train_dataloader()
    rows = _rows(train)
    originals = [r for r in rows if r < 8]
    assert sorted(originals) == [0, 1, 2, 3]
    if mode == "offline":
        assert sorted(r - 8 for r in rows if r >= 8) == [0, 1, 2, 3]  # copies of training clips only
    else:
        train.sampler.set_epoch(0)
        epoch0 = dict(zip(_rows(train), _batches(train)))
        again = dict(zip(_rows(train), _batches(train)))
        train.sampler.set_epoch(1)
        epoch1 = dict(zip(_rows(train), _batches(train)))
        for row in range(4):
            assert not torch.equal(epoch0[row][: SR // 2], torch.from_numpy(waves[row])[: SR // 2])
            assert torch.equal(epoch0[row], again[row])  # same epoch, same draw
            assert len(epoch0[row]) != len(epoch1[row]) or not torch.equal(epoch0[row], epoch1[row])


def test_augment_benchmark_starts(tiny_manifest, capsys):
    """Only that it runs end to end on a few clips; the figures come from deliberate runs."""
    from ser_bench.bench.__main__ import main

    root = tiny_manifest[0].path.parents[1]
    main(["augment", "--root", str(root), "--rounds", "1", "--limit", "8", "--pitch-clips", "0"])
    out = capsys.readouterr().out
    assert "offline all, cold" in out and "warm / cold" in out


def test_every_benchmark_has_a_working_command_line():
    from ser_bench.bench.__main__ import BENCHMARKS, main

    for name in BENCHMARKS:
        with pytest.raises(SystemExit) as exit_:
            main([name, "--help"])
        assert exit_.value.code == 0
