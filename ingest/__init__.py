"""Getting documents in: find files, read metadata, parse, chunk, embed, sync into the store."""
