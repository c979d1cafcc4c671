"""The Optuna study: what a trial is and which trials count (trials), goals (goal), the study's
loop with racing and heartbeats (study), the storage (storage), choosing from the front
(selection), the final re-measurement (confirm), and parallel workers (workers)."""
