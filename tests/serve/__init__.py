"""The server tests: a package, so its conftest is imported as serve.conftest and never shadows tests/conftest.py
(tests/test_config.py imports from `conftest`)."""
