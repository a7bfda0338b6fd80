"""``python -m simulator`` is the ``simulate`` command."""

from simulator.cli.main import main

main()
