"""convtrain service: the torch-free API, spec language and job store."""
