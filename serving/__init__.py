"""BentoML pricing service: it imports only the pricing core of pipeline (.importlinter)."""
