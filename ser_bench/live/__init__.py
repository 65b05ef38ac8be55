"""Live emotion from a stream of audio: the engine (engine.py), voice-activity detection (vad.py), and the terminal
view (`python -m ser_bench.live`). The web app (`python -m ser_bench.app`) runs the same engine per WebSocket."""
