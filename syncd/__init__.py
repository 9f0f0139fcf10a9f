"""syncd: pull-based Entra ID to Learnster SCIM synchronisation."""

__version__ = "0.1.0"
