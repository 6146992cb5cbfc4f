"""Controls: the unit of judgement (a stable ID, its verdict and evidence) and the catalogue of every control,
shared by `dns check` and the audit."""
