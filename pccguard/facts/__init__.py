"""Stage 1: what a deployment is: the facts model, its vocabulary, and how facts are collected or loaded."""
