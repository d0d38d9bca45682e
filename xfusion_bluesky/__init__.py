"""xfusion-bluesky: dual-camera x-ray imaging with automatic EDVR-STF fusion.

The top-level package stays light (no torch import) so that the IPython profile and
the CLI start quickly; import the fusion API from :mod:`xfusion_bluesky.fusion`.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
