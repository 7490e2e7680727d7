"""The closed loop after promotion: keep what each champion predicted, score it when the
ground truth arrives (live performance), retrain only when it is worth it, and put a new
champion on probation against the one it replaced."""
