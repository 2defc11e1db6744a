"""The SASRec student: the model (sasrec), its LightningModule (module), checkpoints and commands."""
