"""``python -m simulator`` is the ``simulate`` command."""

from .cli import main

main()
