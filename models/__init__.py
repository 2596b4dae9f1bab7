"""Registry data: one JSON file per known model (read by npdeeplab.zoo through importlib.resources)."""
