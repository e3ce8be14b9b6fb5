"""``python -m civicpulse.cli``: the same as the ``civicpulse`` command."""

from civicpulse.cli.main import main

main()
