"""Cityscapes layout and label ids, the synthetic city, subset selection."""
