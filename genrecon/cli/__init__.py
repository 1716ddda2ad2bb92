"""Command-line interface: one module per command, ``main.py`` assembles them."""
