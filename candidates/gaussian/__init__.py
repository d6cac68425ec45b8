"""Candidates for the Gaussian filter (and the correlate candidates on its sampled kernel)."""
