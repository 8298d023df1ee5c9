"""The `convtrain` command line (torch-free: the torch commands run as `python -m worker`)."""
