"""Test videos: every variant synthesises the subset's test snippets, as the thesis scored them.

Thesis 4.5.4 and reference/thesis-code.md section 8: one 16-frame video per test snippet, all
from the same start frame (``fvd.start_frame``); prior-frame variants start ``warmup_frames``
earlier and drop those frames, so every variant is scored on the same real frames. Videos are
synthesised at the model's resolution and resized to the scoring size (256x512) as the real
frames were packed (an area average; the thesis code resized both bilinearly).

Feature-encoder variants draw one cluster centre per class from the per-class k-means bank,
with a generator seeded by ``fvd.draw_seed``: one draw for all of a variant's videos, as the thesis
chose one set of feature encodings per network (``fvd.feature_draw: run``; ``video`` draws for
each video). The draws are recorded in the output's provenance (the thesis picked among 50 sets
by eye). With ``fvd.draw_choice.auto`` the draw is chosen instead: candidate draws are
synthesised on held-out val snippets (:func:`video.candidate_videos`), scored by FVD in the TF
stage :mod:`pipeline.fvd.draws`, and the test videos use the chosen one (:mod:`.draws`).
"""
