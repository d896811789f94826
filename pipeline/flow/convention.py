"""The reference flow's direction convention, in a module without torch.

The flow stage writes it into every flow file (attribute ``convention``); the pack stage, which
does not import torch, refuses a flow file whose convention is missing or another.
:mod:`pipeline.flow.backends` re-exports it.
"""

CONVENTION = ("flow[t] warps frame t-1 onto frame t (backward warp, pixels, channel 0 = x): "
              "frame_t(x, y) ~= frame_{t-1}(x + u, y + v); frame 0 has none")
