"""Record and replay: keys, stores, the matcher and the pytest plugin."""
