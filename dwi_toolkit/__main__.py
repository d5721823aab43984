"""``python -m dwi_toolkit`` runs the command-line interface."""

import sys

from .cli.main import main

if __name__ == "__main__":
    sys.exit(main())
