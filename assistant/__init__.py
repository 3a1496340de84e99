"""Answering: prompts, generators, citation checking, freshness, feedback and gaps."""
