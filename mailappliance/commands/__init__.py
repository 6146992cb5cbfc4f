"""One module per verb of the `mailappliance` command."""
