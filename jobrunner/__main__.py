"""`python -m jobrunner` is the `jobrunner` command."""

from jobrunner.cli.main import main

main()
