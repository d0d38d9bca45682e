"""The `xfusion-bluesky` command line: one module per verb."""
