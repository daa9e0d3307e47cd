"""Tools for rule authors: lint, scaffolding and fixtures."""
