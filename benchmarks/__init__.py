"""End-to-end benchmarks of syncd against the fake tenants (``python -m benchmarks.run``)."""
