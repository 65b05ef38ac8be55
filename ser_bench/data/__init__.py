"""Corpora, manifests, actor-disjoint splits, the audio cache and the Lightning data module."""
