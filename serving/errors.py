"""The service's own exceptions (no heavy imports: serving/service.py catches them at the top)."""


class NotLoaded(Exception):
    """No model is loaded yet (or none could be); the message says why."""


class RegistryUnavailable(Exception):
    """The model registry did not answer a lookup (unreachable, or the call failed for another
    reason than "not found"); the message names the registry's URI, without credentials, and the
    call, as pipeline.registry.RegistryUnavailable does."""


class ReloadFailed(Exception):
    """The alias could not be resolved, or its version could not be loaded or failed the
    self-check; the message says which and why. The model served before is still served."""


class SelfCheckFailed(Exception):
    """A loaded version did not reproduce its own offline prediction of its input example."""
