"""The pytest plugin (entry point `llm_gateway`): an in-process gateway in replay mode and clients for tests."""
