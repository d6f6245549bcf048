"""Applications built on fsnlab (they import fsnlab; fsnlab never imports them).

* :mod:`apps.explorer`: the Dash phase explorer behind ``fsnlab explore`` (``docs/explorer.md``).
"""
