"""Voice-activity detection for the live engine: which stretches of a stream hold speech.

silero-vad by default: a small neural VAD whose weights ship inside its registry package (`silero_vad/data`), so it
installs and runs offline, and it tells speech from noise and music far better than an energy threshold.
webrtcvad, the light alternative, is a C extension with a fixed-aggressiveness GMM; it needs no torch, but ser_bench
has torch anyway, so the better detector costs nothing extra to install. `python -m ser_bench.bench live` measures
what silero costs per second of audio.
"""

from __future__ import annotations

import numpy as np

from ser_bench.errors import UserError

FRAME = 512  # silero's frame at 16 kHz (32 ms)


class SileroVad:
    """Speech probability per 512-sample frame of a 16 kHz stream; feed it samples in any chunk size."""

    name = "silero"

    def __init__(self, threshold: float = 0.5):
        import torch

        threads = torch.get_num_threads()
        try:
            from silero_vad import load_silero_vad
        except ImportError:
            raise UserError("the live engine's voice-activity detection needs silero-vad: pip install -e \".[live]\" "
                            "(or --vad none to score every window)") from None
        finally:
            torch.set_num_threads(threads)  # importing silero_vad sets torch to one thread for the whole process
        self.model = load_silero_vad(onnx=False)
        torch.set_num_threads(threads)
        self.threshold = threshold
        self._pending = np.zeros(0, np.float32)
        self._torch = torch

    def feed(self, samples: np.ndarray) -> list[float]:
        """Speech probabilities of the whole frames completed by `samples`, in order."""
        self._pending = np.concatenate([self._pending, samples.astype(np.float32, copy=False)])
        n = len(self._pending) // FRAME
        if not n:
            return []
        frames, self._pending = self._pending[:n * FRAME], self._pending[n * FRAME:]
        with self._torch.inference_mode():
            return [float(self.model(self._torch.from_numpy(f.copy()), 16_000))
                    for f in frames.reshape(n, FRAME)]

    def reset(self) -> None:
        self.model.reset_states()
        self._pending = np.zeros(0, np.float32)


class NoVad:
    """Every frame is speech (`--vad none`): every window gets an emotion, as `predict` scores every window."""

    name = "none"
    threshold = 0.5

    def __init__(self):
        self._pending = 0

    def feed(self, samples: np.ndarray) -> list[float]:
        self._pending += len(samples)
        n, self._pending = divmod(self._pending, FRAME)
        return [1.0] * n

    def reset(self) -> None:
        self._pending = 0


def make(name: str, threshold: float = 0.5):
    if name == "silero":
        return SileroVad(threshold)
    if name == "none":
        return NoVad()
    raise UserError(f"--vad {name}: choose silero or none")
