"""The records that cross a boundary (topics, tables, files): one typed class each."""
