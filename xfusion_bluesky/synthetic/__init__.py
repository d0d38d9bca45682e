"""Synthetic x-ray video and the paper's degradation model."""
