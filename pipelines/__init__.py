"""The Kedro package of stable-audio-ops: thin nodes that call the library (src/stable_audio_ops)."""
