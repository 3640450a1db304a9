"""softplus: exact activation functions on the command line."""
