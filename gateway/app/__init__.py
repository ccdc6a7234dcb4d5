"""The composition root: configuration -> backends -> services -> listeners, and the
data directory (``pli init``, the demo data). The only place that names concrete backends."""
