"""The ``simulate`` command: one module per command group; options become a frozen config,
then a run, then an exit code.
"""
