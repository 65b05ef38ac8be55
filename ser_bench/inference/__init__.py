"""Using a trained model: the self-contained model folder, scoring, timelines, MLflow models, ONNX.

Nothing here imports Lightning, so `python -m ser_bench.predict` starts fast.
"""
