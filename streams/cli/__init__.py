"""The ``recprice`` command line: one module per command group, composed by ``main``."""
