"""Using the models: /v1/chat/completions, /v1/completions and /v1/classifications, forwarded to an
inference backend over HTTP (no torch here)."""
