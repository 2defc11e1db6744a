"""The student: its models (sasrec; chosen by name in registry), their settings, the LightningModule (module),
checkpoints."""
