"""Reading and writing files: YAML with line numbers, atomic output, packaged data."""
