"""Corpora: the synthetic compressed-video corpus and importers for public MOS datasets."""
