"""One module per ``dwi-toolkit`` subcommand, each with ``add_parser(subparsers, add_common)``."""
