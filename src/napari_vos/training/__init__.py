"""One training loop for all methods plus per-method recipes."""
