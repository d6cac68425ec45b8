"""Candidates for pooling and pooling gradients."""
