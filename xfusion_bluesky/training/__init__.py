"""Training EDVR-STF and the LR-only EDVR on synthetic x-ray video, resumable."""
