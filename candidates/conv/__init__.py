"""Candidates for the layer form: conv, conv_transpose and the conv gradients."""
