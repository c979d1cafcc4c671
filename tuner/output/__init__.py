"""What the user takes away: the front as a table and pictures (report, study_report), the choice
(choice) and the chosen config as a deployable file with its manifest, verified on demand (export)."""
from tuner.output.choice import export_choice
from tuner.output.export import export, verify
from tuner.output.study_report import write_report

__all__ = ["export", "export_choice", "verify", "write_report"]
