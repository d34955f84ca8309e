"""Data: the manifest, the audio loader, corpus importers and token inventories."""
