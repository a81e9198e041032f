"""``python -m streams`` runs the ``recprice`` CLI."""

from streams.cli import main

main()
