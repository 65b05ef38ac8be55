"""The MLflow pyfunc model: a DataFrame of waveforms in, emotions and calibrated probabilities out.

Input rows: `wave` (samples, float in [-1, 1], mono) and optionally `sample_rate` (Hz, default 16000). Output
rows: `emotion` (or `uncertain` below the `abstain` parameter), `confidence` and one `p_<class>` column per
class: the whole-clip answer of `python -m ser_bench.predict` (windows of the model's length, their
probabilities averaged). `mlflow models serve` answers the same rows as JSON.
"""

from __future__ import annotations

import mlflow.pyfunc
import numpy as np
import pandas as pd

from ser_bench.inference.scorer import answer


class SERPythonModel(mlflow.pyfunc.PythonModel):
    """Loads the ser_bench model folder logged as the `bundle` artifact. The input schema is the logged signature;
    the DataFrame type hint tells MLflow not to infer another from Python types."""

    def load_context(self, context) -> None:
        from ser_bench.inference import bundle

        self.scorer = bundle.load(context.artifacts["bundle"])

    def predict(self, context, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        from ser_bench.data.audio import resample
        from ser_bench.inference.timeline import score

        abstain = float((params or {}).get("abstain", 0.0))
        rates = model_input["sample_rate"] if "sample_rate" in model_input else [None] * len(model_input)
        waves = []
        for i, (wave, rate) in enumerate(zip(model_input["wave"], rates)):
            wave = np.asarray(wave, dtype=np.float32).reshape(-1)
            rate = 16_000 if rate is None or pd.isna(rate) else int(rate)
            if wave.size == 0 or not np.isfinite(wave).all() or rate <= 0:
                raise ValueError(f"row {i}: a waveform needs at least one finite sample and a positive sample rate")
            waves.append(resample(wave, rate, self.scorer.sample_rate) if rate != self.scorer.sample_rate else wave)
        names = self.scorer.class_names
        rows = []
        for scored in score(self.scorer, waves, self.scorer.window_seconds, self.scorer.hop_seconds):
            emotion, confidence = answer(scored.probabilities, names, abstain)
            rows.append({"emotion": emotion, "confidence": confidence,
                         **{f"p_{c}": float(p) for c, p in zip(names, scored.probabilities)}})
        return pd.DataFrame(rows, columns=["emotion", "confidence", *(f"p_{c}" for c in names)])
