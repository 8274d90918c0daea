"""The small interfaces every part keeps its state behind, each with an embedded and a scale-out backend."""
