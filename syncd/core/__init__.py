"""The pure core: records, decoding, snapshot folds, scope, mapping, targets, ledger, planner."""
