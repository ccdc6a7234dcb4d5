"""The ``pli`` command: one module per command group, each parsing and printing only."""
