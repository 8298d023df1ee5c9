"""convtrain service: torch-free. The lifecycle and errors at the top; spec/, store/, api/ and cli/ below
(see README, Layout)."""
