"""Candidates for the image form: correlate (convolve runs them on the reversed kernel)."""
