"""Shared pytest setup. Fixture plugins live in tests/fixtures/ (one per concern)."""

pytest_plugins = [
    "tests.fixtures.server",
    "tests.fixtures.hosts",
]
