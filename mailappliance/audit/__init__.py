"""`mailappliance audit`: read-only evidence about a deployed site, judged control by control and reported."""
