"""Convolutional LSTM cell (Shi et al., NeurIPS 2015), the recurrent memory of S2S/S2S++ and RVOS.

An LSTM whose input-to-state and state-to-state transforms are convolutions, so the hidden
state h and the cell state c are feature maps that keep their spatial layout:

    [i, f, o, g] = W * [x, h_{t-1}] + b          (one convolution over the concatenation)
    c_t = sigmoid(f) . c_{t-1} + sigmoid(i) . tanh(g)
    h_t = sigmoid(o) . tanh(c_t)

The cell state c is kept in float32 under a half-precision autocast (h in the autocast's dtype).
The peephole terms of Shi et al. are left out, as in the common implementations the papers
build on. The kernel size bounds how far a feature can move between frames and still be
followed by the memory (the reason S2S++ uses larger kernels at higher resolutions).
"""
from __future__ import annotations

import torch
from torch import nn

State = tuple[torch.Tensor, torch.Tensor]


class ConvLSTMCell(nn.Module):
    """One ConvLSTM step: ``(x, (h, c)) -> (h', c')``; x (N, in_ch, H, W), h and c (N, hidden_ch, H, W).

    Gate order in the convolution's output channels is input, forget, output, candidate.
    Weights are Xavier-initialised and the forget gate's bias starts at ``forget_bias`` (1 by
    default) so the cell initially keeps its state.
    """

    def __init__(self, in_ch: int, hidden_ch: int, kernel_size: int = 3, forget_bias: float = 1.0) -> None:
        super().__init__()
        if kernel_size % 2 != 1:
            raise ValueError(f"ConvLSTM kernel size must be odd to keep the map size, got {kernel_size}")
        self.in_ch = in_ch
        self.hidden_ch = hidden_ch
        self.kernel_size = kernel_size
        self.gates = nn.Conv2d(in_ch + hidden_ch, 4 * hidden_ch, kernel_size, padding=kernel_size // 2)
        nn.init.xavier_uniform_(self.gates.weight)
        with torch.no_grad():
            self.gates.bias.zero_()
            self.gates.bias[hidden_ch:2 * hidden_ch] = forget_bias

    def zero_state(self, x: torch.Tensor) -> State:
        """An all-zero (h, c) matching the batch and map size of input ``x``."""
        shape = (x.shape[0], self.hidden_ch, *x.shape[-2:])
        return x.new_zeros(shape), x.new_zeros(shape)

    def forward(self, x: torch.Tensor, state: State | None = None) -> State:
        h, c = self.zero_state(x) if state is None else state
        if x.shape[0] != h.shape[0]:  # one shared input (e.g. a frame's features) for several objects' states
            x = x.expand(h.shape[0], -1, -1, -1)
        gates = self.gates(torch.cat([x, h], dim=1))
        # the cell state is carried in float32 whatever the autocast: rounded to bf16 on every frame,
        # a long memory (forget gate near 1) drifts by several per cent over 100 frames
        i, f, o, g = gates.float().chunk(4, dim=1)
        c_next = torch.sigmoid(f) * c.float() + torch.sigmoid(i) * torch.tanh(g)
        h_next = (torch.sigmoid(o) * torch.tanh(c_next)).to(gates.dtype)
        return h_next, c_next
