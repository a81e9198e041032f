"""``python -m streams`` runs the ``recprice`` CLI."""

from streams.cli.main import main

main()
