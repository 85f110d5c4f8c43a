"""The ``lbapp`` command line: one module per subcommand, dispatched from ``main``."""
