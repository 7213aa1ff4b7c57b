"""The protocol every time-axis layer of the networks implements: its reach, and how it steps when streamed.

Modelled on moshi's ``StreamingModule`` (each layer holds the knowledge of its own streaming state) in a functional
form: a layer gives its zero state (:meth:`StreamingLayer.init_state`) and maps a chunk and the state to its output
and the next state (:meth:`StreamingLayer.step`), so the same code runs :mod:`codec.model.streaming` and traces
into the ONNX step graphs (:mod:`codec.formats.onnx`), where the states are explicit inputs and outputs. A state is a
flat list of tensors (batch 1); a container's is its children's, in order (:meth:`StreamingLayer.state_size` says
how many each takes). :meth:`StreamingLayer.reach` says how far along the time axis an output looks, which
:mod:`codec.model.chunked` sums into the context a chunk needs. A container composes its children's answers, so
neither of those modules knows any layer type: a new layer implements these methods and nothing else changes.
"""

from __future__ import annotations

import copy
from fractions import Fraction
from typing import NamedTuple, cast

import torch
from torch import Tensor, nn
from torch.nn.utils import parametrize

State = list[Tensor]


class NotCausal(ValueError):
    """The model cannot stream: it was not trained causal."""


class Reach(NamedTuple):
    """How far an output step looks: it depends on input positions spanning at most ``span`` input steps around it,
    and one output step is ``step`` input steps (``1 / stride`` for an upsampling layer)."""

    span: Fraction
    step: Fraction

    def then(self, after: Reach | None) -> Reach | None:
        """The reach of this layer followed by ``after`` (None, unbounded or unknown, stays None)."""
        if after is None:
            return None
        return Reach(self.span + after.span * self.step, self.step * after.step)


POINTWISE = Reach(Fraction(0), Fraction(1))


class StreamingLayer(nn.Module):
    """A layer over ``[B, C, T]`` that knows its reach and its streaming step. The defaults describe a layer that
    cannot stream and whose reach is unknown; stateless pointwise layers derive from :class:`Pointwise`.

    None of this adds parameters or buffers: a state lives outside the module, so ``state_dict`` keys are those of
    the layer's own weights.
    """

    def reach(self) -> Reach | None:
        """See :class:`Reach`; None when unbounded (an LSTM) or unknown: chunking then falls back to a guess."""
        return None

    def init_state(self) -> State:
        """The state before the first chunk (zeros, batch 1); raises :class:`NotCausal` when the layer cannot stream
        (it pads on the right or looks ahead), so a streaming model refuses at construction, not mid-stream."""
        raise NotCausal(f"no streaming form for {type(self).__name__}")

    def state_size(self) -> int:
        """``len(self.init_state())`` without building it (a container splits its state by its children's sizes)."""
        raise NotCausal(f"no streaming form for {type(self).__name__}")

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        """The next chunk ``x [1, C, T]`` -> the outputs it completes and the next state. Chunks of a causal layer
        give, concatenated, what the whole input gives offline (up to rounding where a sum is split)."""
        raise NotCausal(f"no streaming form for {type(self).__name__}")

    def delay(self) -> int:
        """Output steps that :meth:`step`'s output lags the offline output by (0 but for a look-ahead): a stream's
        first ``delay()`` outputs are to be dropped, and :meth:`flush` gives the last ones."""
        return 0

    def flush(self, state: State) -> Tensor:
        """The ``delay()`` outputs held back at the end of a stream (``[1, C, delay()]``; none by default)."""
        return torch.zeros(1, 1, 0)


class Pointwise(StreamingLayer):
    """A layer acting on each time step alone: no reach, no state."""

    def reach(self) -> Reach | None:
        return POINTWISE

    def init_state(self) -> State:
        return []

    def state_size(self) -> int:
        return 0

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        return self(x), state


class Wrapper(StreamingLayer):
    """A layer around one inner layer (:meth:`inner`) whose reach and state are the inner layer's; a subclass
    overrides :meth:`step` only when it adds something around the inner step (a skip, an output activation)."""

    def inner(self) -> StreamingLayer:
        raise NotImplementedError

    def reach(self) -> Reach | None:
        return self.inner().reach()

    def init_state(self) -> State:
        return self.inner().init_state()

    def state_size(self) -> int:
        return self.inner().state_size()

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        return self.inner().step(x, state)


class ELU(nn.ELU, Pointwise):
    """``nn.ELU`` as a :class:`Pointwise` layer (no parameters: the state dict is unchanged)."""


class Sequential(nn.Sequential, StreamingLayer):
    """``nn.Sequential`` of :class:`StreamingLayer` s (same state-dict keys): the reach is its layers' composed, the
    state theirs concatenated."""

    def _layers(self) -> list[StreamingLayer]:
        return [streaming_layer(layer) for layer in self]

    def reach(self) -> Reach | None:
        total: Reach | None = POINTWISE
        for layer in self:
            total = total.then(reach_of(layer)) if total is not None else None
        return total

    def init_state(self) -> State:
        return [s for layer in self._layers() for s in layer.init_state()]

    def state_size(self) -> int:
        return sum(layer.state_size() for layer in self._layers())

    def step(self, x: Tensor, state: State) -> tuple[Tensor, State]:
        new: State = []
        at = 0
        for layer in self._layers():
            size = layer.state_size()
            x, out = layer.step(x, state[at : at + size])
            new += out
            at += size
        return x, new


def streaming_layer(module: nn.Module) -> StreamingLayer:
    """``module`` as a :class:`StreamingLayer` (the networks' layers all are); :class:`NotCausal` for another module,
    which cannot stream."""
    if not isinstance(module, StreamingLayer):
        raise NotCausal(f"no streaming form for {type(module).__name__}")
    return module


def reach_of(module: nn.Module) -> Reach | None:
    """``module.reach()``, or None (unknown) for a module that does not implement the protocol."""
    return module.reach() if isinstance(module, StreamingLayer) else None


def kept_inputs_step(conv: nn.Module, x: Tensor, state: State, keep: int) -> tuple[Tensor, State]:
    """A convolution padded on the left only, chunk by chunk: its last ``keep`` inputs (``state[0]``, ``[1, C,
    keep]``) go before the chunk, and ``conv`` runs unpadded on the whole. Negative slicing keeps a traced graph's
    time axis dynamic."""
    if not keep:
        return conv(x), []
    buffer = torch.cat([state[0], x], dim=-1)
    return conv(buffer), [buffer[..., -keep:]]


def frozen(module: nn.Module) -> nn.Module:
    """A deep copy of ``module`` (eval mode) with every weight-norm parametrisation replaced by its effective weight:
    a stream steps many times on a model that does not train, so the weights are computed once, not at every chunk
    (the same values, so the same outputs)."""
    module = copy.deepcopy(module).eval()
    for sub in list(module.modules()):
        if parametrize.is_parametrized(sub):
            # Not parametrize.remove_parametrizations: the copy shares the parametrised class with the original,
            # and removing deletes the class's property (the original module would lose its weights).
            names = list(cast(nn.ModuleDict, sub.parametrizations).keys())
            weights = {name: getattr(sub, name).detach().clone() for name in names}
            sub.__class__ = sub.__class__.__bases__[0]
            del sub._modules["parametrizations"]
            for name, weight in weights.items():
                sub.register_parameter(name, nn.Parameter(weight, requires_grad=False))
    return module
