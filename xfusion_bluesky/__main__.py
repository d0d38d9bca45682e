"""`python -m xfusion_bluesky` → the command-line interface."""

from xfusion_bluesky.cli.main import main

raise SystemExit(main())
