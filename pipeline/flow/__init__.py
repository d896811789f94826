"""Reference optical flow between consecutive frames, and the one warp every stage shares."""
