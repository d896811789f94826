"""Training: variant -> models, the thesis's schedules, and one resumable loop."""
