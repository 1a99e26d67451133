"""Files: artifacts (safetensors + JSON metadata), JSON lines, datasets, features."""
