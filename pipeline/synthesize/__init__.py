"""Test videos: every variant synthesises the subset's test snippets, as the thesis scored them.

Thesis 4.5.4 and reference/thesis-code.md section 8: one 16-frame video per test snippet, all
from the same start frame (``fvd.start_frame``); prior-frame variants start ``warmup_frames``
earlier and drop those frames, so every variant is scored on the same real frames. Videos are
synthesised at the model's resolution and resized to the scoring size (256x512) as the real
frames were packed (an area average; the thesis code resized both bilinearly).

Feature-encoder variants draw one cluster centre per class for each whole video from the
per-class k-means bank, with a generator seeded by ``fvd.seed`` and the video's index; the
draw is recorded in the output's provenance (the thesis picked among 50 draws by eye). With
``fvd.draw_choice.auto`` the draw is chosen instead: candidate draw sets are synthesised on
held-out val snippets (:func:`video.candidate_videos`), scored by FVD in the TF stage
:mod:`pipeline.fvd.draws`, and the test videos use the chosen set (:mod:`.draws`).
"""
