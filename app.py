"""Entry point: `python app.py [flags]` (what Procfile and bin/serve run); settings come from env
vars and flags (see --help). Installed with pip, the same server is the `signaling-server` command."""

from __future__ import annotations

import sys

from signaling.cli import main

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
