"""Answering: prompts, generators, citation checking, freshness, the query log and its
feedback, knowledge gaps."""
