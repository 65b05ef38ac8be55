"""Waveform -> features. Every frontend maps (wave [B, T], lengths [B]) to (features, frame lengths)."""

from __future__ import annotations

import torch
import torchaudio
from torch import nn

from ser_bench.models.layers import lengths_to_mask


class LogMel(nn.Module):
    """Log-mel spectrogram [B, n_mels, frames] with padded frames zeroed.

    `norm="utterance"` subtracts each clip's mean log energy and divides by its spread (one scalar
    each, over valid frames only): recording level goes, spectral shape and dynamics stay.
    `norm="bins"` does the same per mel band (cepstral mean and variance normalisation over the clip's
    own frames): the clip's long-term spectral envelope, much of it the speaker and the channel,
    goes too. Either uses the clip alone, never other clips of its speaker.

    `norm="speaker"` normalises each mel band with the statistics of all the clips of the clip's
    speaker, test speakers included (their audio, never their labels). That is transductive (it
    assumes the test speakers' recordings are at hand before testing), so runs are tagged and the
    report never ranks them with speaker-independent ones. The run applies it to the cached raw
    log-mel (`features.speaker_normalised`); the frontend then leaves the features as they are.
    """

    def __init__(self, sample_rate: int = 16_000, n_fft: int = 512, win_length: int = 400,
                 hop_length: int = 160, n_mels: int = 64, f_min: float = 20.0, f_max: float | None = None,
                 norm: str = "utterance"):
        super().__init__()
        if norm not in ("utterance", "bins", "speaker", "none"):
            raise ValueError(f"LogMel norm must be 'utterance', 'bins', 'speaker' or 'none', not {norm!r}")
        self.n_mels, self.hop_length, self.norm = n_mels, hop_length, norm
        self.mel = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=n_fft, win_length=win_length, hop_length=hop_length,
            n_mels=n_mels, f_min=f_min, f_max=f_max, power=2.0)

    precomputed = False  # True: forward receives cached raw log-mel [B, frames, n_mels] (see `raw`)

    def settings(self) -> dict:
        """What determines `raw` (the feature cache keys on it)."""
        mel = self.mel
        return {"sample_rate": mel.sample_rate, "n_fft": mel.n_fft, "win_length": mel.win_length,
                "hop_length": mel.hop_length, "n_mels": self.n_mels, "f_min": mel.f_min, "f_max": mel.f_max}

    def frame_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        return lengths // self.hop_length + 1  # centred frames, as torch.stft(center=True) makes them

    def raw(self, wave: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-mel [B, n_mels, frames] before masking and normalisation, and the valid frame counts.

        Always float32, also under mixed-precision autocast (`trainer.precision=bf16-mixed`): the mel
        matmul in bf16 would round the features themselves, as the cache (float32) never does.
        """
        with torch.autocast(wave.device.type, enabled=False):
            feats = torch.log(self.mel(wave.float()) + 1e-6)
        return feats, self.frame_lengths(lengths).clamp(max=feats.shape[-1])

    def forward(self, wave: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.precomputed:  # `wave` is a batch of cached `raw` features, frames first; `lengths` counts frames
            feats, frames = wave.transpose(1, 2), lengths
        else:
            feats, frames = self.raw(wave, lengths)
        mask = lengths_to_mask(frames, feats.shape[-1]).unsqueeze(1)  # [B, 1, F]
        if self.norm in ("utterance", "bins"):
            dims = (1, 2) if self.norm == "utterance" else (2,)
            count = mask.sum(dim=dims, keepdim=True) * (self.n_mels if self.norm == "utterance" else 1)
            mean = (feats * mask).sum(dim=dims, keepdim=True) / count
            var = (((feats - mean) * mask) ** 2).sum(dim=dims, keepdim=True) / count
            feats = (feats - mean) / (var.sqrt() + 1e-5)
        return feats * mask, frames
