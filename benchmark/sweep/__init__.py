"""``ticl sweep``: grids of presets x data roots x methods x seeds x ``--set`` values, one ``ticl run`` per cell.

One job per module: ``schema`` reads the sweep file into typed records, ``plan`` turns it into cells (ids, their
``ticl run`` arguments) and validates every cell's config before any work, ``record`` keeps ``OUT/sweep.yaml`` (one
sweep per folder), ``run`` executes the cells on Ray (an optional dependency, imported only there), ``cell`` is the
child process of one cell, and ``command`` is the CLI glue.
"""
