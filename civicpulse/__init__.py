"""civicpulse: the CLI and the composition root that wires the platform's parts together."""

__version__ = "0.1.0"
