"""The audit trail: hash-chained, immutable records of every rollout decision."""
