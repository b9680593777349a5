"""`python -m cafleet` runs the CLI, exactly as the `cafleet` console script does."""

from cafleet.entry import main

main()
