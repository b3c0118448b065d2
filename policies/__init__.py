"""Policy documents: their model, their path patterns and their evaluation."""
