"""`python -m cafleet` runs the CLI."""

from cafleet.cli import main

main()
