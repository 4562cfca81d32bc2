"""Building bundles: seeded data -> trainer -> model IR -> every exporter -> parity gate -> bundle folder.

`pipeline.py` orchestrates and caches, `train_*.py` turn each framework's model into the IR (`ir.py`),
`export_*.py` write each format from the IR, `parity.py` holds every format to the native model.
Bundles are read back by adapters/bundle.py.
"""
