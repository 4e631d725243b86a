"""``ticl efficiency``: time, FLOPs and peak memory of registered mixers, sizes and PET methods, side by side.

One job per module: ``options`` (the command line, importable without torch), ``choices`` (the names the
registries offer), ``geometry`` (frames -> patch grid -> tokens), ``cases`` (what one measured case builds and
runs), ``timing`` (interleaved Timer medians and IQRs), ``memory`` (peak bytes of one call), ``machine`` (what it
ran on, and whether the CPU was shared), ``measure`` (the loop), ``report`` (CSV and Markdown), ``plots``
(log-log figures) and ``command`` (options -> plan -> files).
"""
