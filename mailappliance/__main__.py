"""Allow `python -m mailappliance` where the console script is not on PATH."""

from mailappliance.cli import main

main()
