"""Record and replay: keys (keys.py), the recording format (model.py), stores (store.py, sqlite_store.py,
directory_store.py), stream shapes (streams.py), the nearest-miss index (nearest.py, diff.py) and the recorder
(recorder.py). Nothing is imported here, so the pass-through recorder costs no numpy/hnswlib import.

The pytest plugin lives in gateway/pytest_plugin.py: it composes the whole app, which recordings/ may not import.
"""
