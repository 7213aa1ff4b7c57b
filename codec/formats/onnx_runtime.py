"""The onnxruntime backend: an export's ONNX graphs (:mod:`codec.formats.onnx`) run where the torch codec runs.

:class:`OnnxCodec` has the codec's ``encode(x [B, 1, T], n_q)`` and ``decode(codes [B, n, F])`` on tensors, so
:func:`codec.model.chunked.encode_stream` and :func:`~codec.model.chunked.decode_codes` chunk a long signal the same
way for either backend (with the context of the export's torch layers): ``telucodec encode/decode --backend onnx``
and ``pipeline.tokenize --backend onnx`` write the same bitstream and token shards where the codes agree.
:class:`OnnxStreamingEncoder` and :class:`OnnxStreamingDecoder` drive the step graphs of a causal model chunk by chunk,
as a host program in any language would, with the API of :mod:`codec.model.streaming`'s classes.

The folder's ``onnx.json`` must name the export given (model id, rate, hop, levels, codebook size): graphs of another
model are refused, as a bitstream of another model is.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from codec.formats.export import ExportedCodec
from codec.formats.onnx import MANIFEST, ONNX_FORMAT, ONNX_VERSION


class OnnxBackendError(ValueError):
    """The ONNX graphs are missing, of another model, modified, or not loadable (the message is one line)."""


def default_onnx_dir(export_path: str | Path) -> Path:
    """Where ``telucodec`` looks for an export's ONNX graphs by default: ``<folder>/<name>.onnx/`` beside it."""
    return Path(export_path).with_suffix(".onnx")


def read_manifest(folder: str | Path, exported: ExportedCodec | None = None) -> dict[str, Any]:
    """``folder/onnx.json``, checked against ``exported`` when given; :class:`OnnxBackendError` otherwise."""
    folder = Path(folder)
    path = folder / MANIFEST
    model = exported.path if exported is not None and exported.path is not None else "MODEL"
    if not path.is_file():
        hint = f"telucodec export-onnx {model} {folder}"
        raise OnnxBackendError(f"no ONNX graphs in {folder} ({path} not found): write them with `{hint}`")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise OnnxBackendError(f"{path}: unreadable ({exc})") from None
    if manifest.get("format") != ONNX_FORMAT or manifest.get("format_version") != ONNX_VERSION:
        raise OnnxBackendError(f"{path}: not a TeluCodec ONNX export of version {ONNX_VERSION}")
    if exported is not None:
        codec = exported.codec
        want = {
            "model_id": exported.model_id,
            "sample_rate": codec.sample_rate,
            "hop_length": codec.hop_length,
            "num_levels": codec.num_levels,
            "codebook_size": int(codec.quantizer.codebook_size),
        }
        wrong = {k: manifest.get(k) for k, v in want.items() if manifest.get(k) != v}
        if wrong:
            raise OnnxBackendError(
                f"the ONNX graphs in {folder} are of another model ({', '.join(f'{k} {v}' for k, v in wrong.items())}; "
                f"the export's model id is {exported.model_id[:16]}): export them again with "
                f"`telucodec export-onnx {model} {folder}`"
            )
    return manifest


def session(path: Path, threads: int = 0, sha256: str | None = None):
    """An onnxruntime session of ``path`` on the CPU with ``threads`` intra-op threads (0: onnxruntime's choice);
    the file's sha256 checked first when given."""
    import onnxruntime as ort

    try:
        data = path.read_bytes()
    except OSError as exc:
        raise OnnxBackendError(f"{path}: {exc.strerror or exc}") from None
    if sha256 is not None and hashlib.sha256(data).hexdigest() != sha256:
        raise OnnxBackendError(f"{path}: not the file onnx.json lists (sha256 differs): modified or corrupt")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    try:
        return ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # onnxruntime raises its own exception types
        raise OnnxBackendError(f"{path}: onnxruntime cannot load it ({str(exc).splitlines()[0]})") from None


class OnnxGraphs:
    """The sessions of one ONNX folder, opened on first use (thread-safe: a batch shares them)."""

    def __init__(self, folder: str | Path, exported: ExportedCodec | None = None, threads: int = 0):
        self.folder = Path(folder)
        self.manifest = read_manifest(self.folder, exported)
        self.threads = threads
        self._sessions: dict[str, Any] = {}
        self._lock = threading.Lock()

    def has(self, graph: str) -> bool:
        return graph in self.manifest["files"]

    def session(self, graph: str):
        with self._lock:
            if graph not in self._sessions:
                name = self.manifest["files"].get(graph)
                if name is None:
                    what = "int8 graphs (export with --int8)" if graph.endswith("_int8") else f"a {graph} graph"
                    raise OnnxBackendError(f"{self.folder}: has no {what}")
                sha = self.manifest.get("sha256", {}).get(name)
                self._sessions[graph] = session(self.folder / name, self.threads, sha)
            return self._sessions[graph]


class OnnxCodec:
    """An export's encoder and decoder run by onnxruntime, with :class:`codec.model.codec.Codec`'s ``encode``/``decode``
    on tensors (batch items one at a time). ``int8``: the int8 decoder (the encoder stays float32, so the codes and the
    bitstream do not change). ``encoder``/``decoder`` are the export's torch modules: only their layout is read
    (:func:`codec.model.chunked.receptive_context`), never run."""

    def __init__(self, exported: ExportedCodec, folder: str | Path, *, threads: int = 0, int8: bool = False):
        self.exported = exported
        codec = exported.codec
        self.encoder: nn.Module = codec.encoder
        self.decoder: nn.Module = codec.decoder
        self.sample_rate = codec.sample_rate
        self.num_levels = codec.num_levels
        self._hop = codec.hop_length
        self.graphs = OnnxGraphs(folder, exported, threads)
        self.int8 = int8
        if int8 and not self.graphs.has("decoder_int8"):
            raise OnnxBackendError(f"{self.graphs.folder}: has no int8 graphs (export them with --int8)")

    @property
    def hop_length(self) -> int:
        return self._hop

    def encode(self, x: torch.Tensor, n_q: int | None = None) -> torch.Tensor:
        """Waveform ``[B, 1, T]`` -> codes ``[B, n_q, ceil(T / hop)]`` int64 (all levels when None), as
        ``Codec.encode``."""
        if x.dim() != 3 or x.shape[1] != 1:
            raise ValueError(f"expected a waveform of shape [B, 1, T], got {tuple(x.shape)}")
        n_q = self.num_levels if n_q is None else int(n_q)
        if not 1 <= n_q <= self.num_levels:
            raise ValueError(f"n_q must be in [1, {self.num_levels}], got {n_q}")
        audio = x.detach().to("cpu", torch.float32).numpy()
        audio = np.pad(audio, ((0, 0), (0, 0), (0, (-audio.shape[-1]) % self._hop)))
        run = self.graphs.session("encoder").run
        codes = [run(["codes"], {"audio": np.ascontiguousarray(item[None])})[0][:n_q] for item in audio]
        return torch.from_numpy(np.stack(codes)).to(x.device)

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Codes ``[B, n_q, F]`` -> waveform ``[B, 1, F * hop]``, as ``Codec.decode``."""
        if codes.dim() != 3 or not 1 <= codes.shape[1] <= self.num_levels:
            raise ValueError(f"expected codes [B, 1..{self.num_levels}, T], got {tuple(codes.shape)}")
        run = self.graphs.session("decoder_int8" if self.int8 else "decoder").run
        array = codes.detach().to("cpu", torch.int64).numpy()
        audio = [run(["audio"], {"codes": np.ascontiguousarray(item)})[0][0] for item in array]
        return torch.from_numpy(np.stack(audio)).to(codes.device)


def _initial_states(specs: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    return {s["input"]: np.zeros(s["shape"], dtype=np.float32) for s in specs}


class OnnxStreamingDecoder:
    """Code frames ``[n_q, F]``, any number at a time -> the samples they complete, through ``decoder_step.onnx``:
    what :class:`codec.model.streaming.StreamingDecoder` gives, the states held here as plain arrays."""

    def __init__(self, graphs: OnnxGraphs, int8: bool = False):
        self.session = graphs.session("decoder_step_int8" if int8 else "decoder_step")
        spec = graphs.manifest["streaming"]["decoder_step"]
        self.specs = spec["states"]
        self.states = _initial_states(self.specs)
        self.to_drop = int(spec["delay_samples"])  # the look-ahead: the first samples of the stream lie before it
        self.tail = np.zeros(0, dtype=np.float32)
        self.outputs = ["audio", "tail", *(s["output"] for s in self.specs)]

    def decode(self, codes: np.ndarray | torch.Tensor) -> np.ndarray:
        array = np.asarray(codes.cpu() if isinstance(codes, torch.Tensor) else codes, dtype=np.int64)
        if array.ndim != 2 or array.shape[1] == 0:
            return np.zeros(0, dtype=np.float32)
        audio, self.tail, *states = self.session.run(self.outputs, {"codes": array, **self.states})
        self.states = {s["input"]: state for s, state in zip(self.specs, states)}
        drop = min(self.to_drop, audio.shape[0])
        self.to_drop -= drop
        return audio[drop:]

    def flush(self) -> np.ndarray:
        """The last samples (the look-ahead's, faded out as offline)."""
        tail, self.tail = self.tail, np.zeros(0, dtype=np.float32)
        return tail


class OnnxStreamingEncoder:
    """Mono samples, any number at a time -> the code frames they complete ``[n_q, F]``, through ``encoder_step.onnx``:
    what :class:`codec.model.streaming.StreamingEncoder` gives."""

    def __init__(self, graphs: OnnxGraphs, n_q: int | None = None):
        self.session = graphs.session("encoder_step")
        self.specs = graphs.manifest["streaming"]["encoder_step"]["states"]
        self.states = _initial_states(self.specs)
        self.hop = int(graphs.manifest["hop_length"])
        self.n_q = n_q or int(graphs.manifest["num_levels"])
        self.pending = np.zeros(0, dtype=np.float32)
        self.outputs = ["codes", *(s["output"] for s in self.specs)]

    def encode(self, samples: np.ndarray | torch.Tensor) -> np.ndarray:
        array = np.asarray(samples.cpu() if isinstance(samples, torch.Tensor) else samples, dtype=np.float32)
        self.pending = np.concatenate([self.pending, array.reshape(-1)])
        ready = self.pending.shape[0] // self.hop * self.hop
        chunk, self.pending = self.pending[:ready], self.pending[ready:]
        return self._codes(chunk)

    def flush(self) -> np.ndarray:
        chunk = np.pad(self.pending, (0, (-self.pending.shape[0]) % self.hop))
        self.pending = np.zeros(0, dtype=np.float32)
        return self._codes(chunk)

    def _codes(self, chunk: np.ndarray) -> np.ndarray:
        if chunk.shape[0] == 0:
            return np.zeros((self.n_q, 0), dtype=np.int64)
        codes, *states = self.session.run(self.outputs, {"audio": chunk.reshape(1, 1, -1), **self.states})
        self.states = {s["input"]: state for s, state in zip(self.specs, states)}
        return codes[: self.n_q]
