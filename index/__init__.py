"""The store and what reads it: Chroma collections, the document registry, retrieval."""
