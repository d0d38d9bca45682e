"""`xfusion-bluesky` entry point: argparse, logging setup, dispatch."""

def main(argv=None):
    return 0
