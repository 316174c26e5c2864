"""The service's own exceptions (no heavy imports: serving/service.py catches them at the top)."""


class NotLoaded(Exception):
    """No model is loaded yet (or none could be); the message says why."""


class ReloadFailed(Exception):
    """The alias could not be resolved, or its version could not be loaded or failed the
    self-check; the message says which and why. The model served before is still served."""


class SelfCheckFailed(Exception):
    """A loaded version did not reproduce its own offline prediction of its input example."""
