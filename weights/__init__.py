"""The model bundles that ship with live (one folder each: model.keras, labels.txt,
manifest.json). Installed as the package `live.weights`, so that an installed live finds
them; see live/backbones.py SHIPPED_WEIGHTS."""
