"""Evaluation: sweeps over noise, HR down-sampling and separation; figures (PNG)."""
