"""Stage 3: verdicts per rule and per requirement, and the settings that build an evaluator."""
