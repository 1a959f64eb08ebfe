"""Stateful (streaming) models and inputs without a batch axis.

A voice-activity detector or an RNN cell exported for streaming takes a chunk of input and a recurrent
state, and returns its answer and the next state; a caller feeds each call's state output back as the next
call's state input. Such a model cannot be judged one sample at a time with a fixed state: a candidate that
ignored its state would look perfect. So edgeopt runs its data as a stream.

- **State pairs** (``StatePair``: output -> input) are declared (``--state OUT=IN``) or detected from the
  graph (``detect_state``; the rule is in its docstring).
- **Inputs fed whole** (``fed_whole_inputs``): an input whose declared shape has no batch axis at 0 (a scalar
  such as a sample rate, a state ``[layers, batch, hidden]``) is stacked in data files on a new axis 0, one
  whole value per sample, and fed as it is at each step.
- **Running a stream** (``stream_outputs``): one sample per call, in order, starting from the data's first
  state (zeros in synthetic data), each step's state outputs fed back; ``with_stream_states`` stores the
  states the fp32 reference's stream fed, so calibration and timing, which feed steps independently, see
  realistic states.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from edgeopt.errors import CompileError, InputSpecError
from edgeopt.types import Dataset, Feeds, Graph, StatePair, TensorSpec

STATE_WORDS = ("state", "hidden", "cache", "past", "present", "memory", "carry", "context")
"""Substrings that mark a state input's name (after lower-casing and dropping separators)."""
SHORT_STATE_NAMES = frozenset({"h", "c", "hx", "cx", "hc", "s", "mem", "ctx", "kv"})
"""Whole stems that mark a state (``h0``/``hn``, ``c_in``/``c_out``...)."""
_IN_SUFFIXES = ("input", "prev", "previous", "old", "in", "0")
_IN_PREFIXES = ("prev", "previous", "old", "in")
_OUT_SUFFIXES = ("output", "next", "new", "out", "n", "1")
_OUT_PREFIXES = ("next", "new", "out")


def _plain(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _forms(name: str, suffixes: tuple[str, ...], prefixes: tuple[str, ...]) -> set[str]:
    """``name`` without separators, and without one of the marker suffixes or prefixes."""
    base = _plain(name)
    forms = {base}
    forms |= {base[: -len(s)] for s in suffixes if base.endswith(s) and len(base) > len(s)}
    forms |= {base[len(p) :] for p in prefixes if base.startswith(p) and len(base) > len(p)}
    return forms


def _input_forms(name: str) -> set[str]:
    forms = _forms(name, _IN_SUFFIXES, _IN_PREFIXES)
    base = _plain(name)
    if "past" in base:  # past_key_values.0.key -> present.0.key, past.0.value -> present.0.value
        forms |= {base.replace("pastkeyvalues", "present"), base.replace("past", "present")}
    return forms


def _looks_like_state(stem: str) -> bool:
    return stem in SHORT_STATE_NAMES or any(w in stem for w in STATE_WORDS)


def _same_signature(inp: TensorSpec, out: TensorSpec) -> bool:
    """Same dtype, same rank, equal sizes wherever both are known."""
    if inp.dtype != out.dtype or len(inp.shape) != len(out.shape) or not inp.is_static:
        return False
    return all(not (isinstance(o, int) and o > 0) or o == i for i, o in zip(inp.shape, out.shape, strict=True))


def detect_state(graph: Graph) -> tuple[StatePair, ...]:
    """State pairs the graph makes obvious.

    The rule: an input and an output pair up when (1) they have the same dtype and shape (the input's shape
    static; an output dimension shape inference left unknown matches any size), (2) their names are the same
    once separators, case and one marker are dropped — input markers ``in``/``input``/``0``/``prev``/``old``
    (suffix or prefix), output markers ``out``/``output``/``n``/``1``/``new``/``next`` (``state``/``stateN``,
    ``h0``/``hn``, ``c_in``/``c_out``, ``prev_state``/``next_state``), or ``past``→``present``
    (``past_key_values.0.key``/``present.0.key``), and (3) the shared name looks like a state: it contains
    state/hidden/cache/past/present/memory/carry/context or is h, c, hx, cx, s, mem, ctx, kv. An input or output that
    could pair with more than one partner is left out (declare it with ``--state OUT=IN``).
    """
    candidates: list[tuple[TensorSpec, TensorSpec]] = []
    outputs = {o.name: o for o in graph.outputs}
    for inp in graph.inputs:
        in_forms = _input_forms(inp.name)
        for out in outputs.values():
            if out.name == inp.name or not _same_signature(inp, out):
                continue
            shared = in_forms & _forms(out.name, _OUT_SUFFIXES, _OUT_PREFIXES)
            if any(_looks_like_state(s) for s in shared if s):
                candidates.append((inp, out))
    per_input: dict[str, int] = {}
    per_output: dict[str, int] = {}
    for inp, out in candidates:
        per_input[inp.name] = per_input.get(inp.name, 0) + 1
        per_output[out.name] = per_output.get(out.name, 0) + 1
    order = [o.name for o in graph.outputs]
    return tuple(
        StatePair(out.name, inp.name, order.index(out.name))
        for inp, out in candidates
        if per_input[inp.name] == 1 and per_output[out.name] == 1
    )


def resolve_state(graph: Graph, declared: Mapping[str, str] | Sequence[StatePair] | None) -> tuple[StatePair, ...]:
    """The state pairs to run ``graph`` with: ``declared`` (output -> input, or ``StatePair`` s) checked against
    the graph, ``{}`` for none, or ``detect_state(graph)`` when None. ``InputSpecError`` for a declared name the
    graph lacks, an input or output used twice, or an output whose dtype or shape differs from its input's."""
    if declared is None:
        return detect_state(graph)
    items = [(p.output, p.input) for p in declared] if not isinstance(declared, Mapping) else list(declared.items())
    inputs = {s.name: s for s in graph.inputs}
    outputs = {s.name: s for s in graph.outputs}
    order = [o.name for o in graph.outputs]
    hint = "name an output and the input it is fed back to: --state OUTPUT=INPUT (see `edgeopt inspect MODEL`)"
    pairs: list[StatePair] = []
    for out, inp in items:
        if out not in outputs:
            raise InputSpecError(f"--state {out}={inp}: the model has no output {out!r} (outputs: {order})", hint=hint)
        if inp not in inputs:
            raise InputSpecError(
                f"--state {out}={inp}: the model has no input {inp!r} (inputs: {list(inputs)})", hint=hint
            )
        if not inputs[inp].is_static:
            raise InputSpecError(f"--state {out}={inp}: input {inp!r} has dynamic dims {list(inputs[inp].shape)}",
                                 hint=f"fix them with --input-shape {inp}=...")
        if not _same_signature(inputs[inp], outputs[out]):
            raise InputSpecError(
                f"--state {out}={inp}: output {out!r} is {outputs[out].dtype}{list(outputs[out].shape)} but input "
                f"{inp!r} is {inputs[inp].dtype}{list(inputs[inp].shape)}; a state output must fit its input",
                hint=hint,
            )
        pairs.append(StatePair(out, inp, order.index(out)))
    for attr in ("input", "output"):
        names = [getattr(p, attr) for p in pairs]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise InputSpecError(f"--state names {attr} {twice[0]!r} in more than one pair", hint=hint)
    return tuple(pairs)


def fed_whole_inputs(graph: Graph, state: Sequence[StatePair] = ()) -> tuple[str, ...]:
    """Inputs with no batch axis at 0, fed whole per step.

    Scalars; inputs whose static leading size differs from the batch (the leading size of the first input
    of rank >= 1 that is not a state); and, when some input of rank >= 1 has no batch axis while that
    batch is a static size above 1, every input (the graph then has no shared batch axis: one sample is one
    whole feed). A dynamic leading size counts as the batch axis.
    """
    states = {p.input for p in state}
    ranked = [s for s in graph.inputs if s.shape]
    lead_spec = next((s for s in ranked if s.name not in states), ranked[0] if ranked else None)
    lead = lead_spec.shape[0] if lead_spec is not None else None
    static_lead = lead if isinstance(lead, int) and lead > 0 else None

    def has_batch_axis(spec: TensorSpec) -> bool:
        first = spec.shape[0]
        return static_lead is None or not (isinstance(first, int) and first > 0) or first == static_lead

    whole = [s.name for s in graph.inputs if not s.shape or not has_batch_axis(s)]
    if static_lead is not None and static_lead > 1 and any(graph.input(n).shape for n in whole):
        return tuple(s.name for s in graph.inputs)
    return tuple(whole)


def batch_inputs(graph: Graph, dataset: Dataset) -> list[TensorSpec]:
    """The graph inputs that carry the batch axis at 0 for ``dataset`` (not fed whole)."""
    return [s for s in graph.inputs if s.name not in dataset.fed_whole]


def compared_constants(model_path: Path) -> dict[str, float | int]:
    """For each graph input of one element compared (``Equal``, ``Less``, ``Greater``, ``LessOrEqual``,
    ``GreaterOrEqual``; directly or through Cast/Identity/Reshape-like ops) with a one-element constant: that
    constant (the first such comparison in graph order). Synthetic data feeds it, so a sample rate checked
    against 16000 gets 16000, not a random small number that selects no branch."""
    import onnx

    from edgeopt.graph.index_bounds import PASS_THROUGH
    from edgeopt.graph.inspect import constant_values

    model = onnx.load(str(model_path), load_external_data=False)
    values = constant_values(model.graph)
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    found: dict[str, float | int] = {}
    for graph_input in model.graph.input:
        dims = graph_input.type.tensor_type.shape.dim
        if graph_input.name in values or any(d.HasField("dim_value") and d.dim_value != 1 for d in dims):
            continue
        frontier, seen = [graph_input.name], set()
        while frontier and graph_input.name not in found:
            name = frontier.pop(0)
            seen.add(name)
            for node in consumers.get(name, ()):
                if node.op_type in PASS_THROUGH and node.input[0] == name and node.output[0] not in seen:
                    frontier.append(node.output[0])
                elif node.op_type in ("Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual"):
                    other = next((i for i in node.input if i != name), None)
                    if other in values and int(np.prod(values[other].dims or [1])) == 1:
                        found[graph_input.name] = onnx.numpy_helper.to_array(values[other]).reshape(-1)[0].item()
                        break
    return found


# ----------------------------------------------------------------------------------------------- running


def _per_step(parts: list[np.ndarray]) -> np.ndarray:
    """Per-step outputs stacked on a new axis 0, without a leading size-1 (batch) axis they all share."""
    stacked = np.stack(parts)
    return stacked[:, 0] if stacked.ndim > 1 and stacked.shape[1] == 1 else stacked


def stream_outputs(
    run: Callable[[Feeds], Sequence[np.ndarray]], dataset: Dataset
) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    """Run ``dataset`` as one stream: ``(outputs, fed_states)``.

    One sample per call, in order; the state inputs of the first call come from the data's first sample,
    each later call's from the previous call's state outputs (cast to the input's dtype). ``outputs`` holds
    every graph output, per-step results stacked on axis 0 (a leading size-1 batch axis dropped);
    ``fed_states`` the state inputs actually fed, stacked the way the dataset stores them. ``CompileError``
    when a state output's shape does not fit its input (a candidate that changed the state's layout).
    """
    steps = dataset.batches(1)
    state = {p.input: steps[0][p.input] for p in dataset.state}
    fed: dict[str, list[np.ndarray]] = {p.input: [] for p in dataset.state}
    collected: list[list[np.ndarray]] = []
    for step, feeds in enumerate(steps):
        feeds = {**feeds, **state}
        for name, value in state.items():
            fed[name].append(value)
        outs = [np.asarray(o) for o in run(feeds)]
        if not collected:
            collected = [[] for _ in outs]
        if len(outs) != len(collected):
            raise CompileError(f"the runner returned {len(outs)} outputs, earlier {len(collected)}")
        for acc, o in zip(collected, outs, strict=True):
            acc.append(np.atleast_1d(o))
        for pair in dataset.state:
            if pair.index >= len(outs):
                raise CompileError(f"state output {pair.output!r} (output {pair.index}) is missing from the runner's "
                                   f"{len(outs)} outputs")
            out, want = outs[pair.index], state[pair.input]
            if out.shape != want.shape:
                raise CompileError(
                    f"state output {pair.output!r} has shape {list(out.shape)} at step {step}, its input "
                    f"{pair.input!r} takes {list(want.shape)}"
                )
            state[pair.input] = np.ascontiguousarray(out, dtype=want.dtype)
    whole = set(dataset.fed_whole)
    fed_states = {k: (np.stack(v) if k in whole else np.concatenate(v)) for k, v in fed.items()}
    return [_per_step(parts) for parts in collected], fed_states


def answers(outputs: Sequence[np.ndarray], dataset: Dataset) -> list[np.ndarray]:
    """The outputs a stream is judged on: every output except the states fed back (all of them when every
    output is a state). A state's errors show in the answers of the steps after it."""
    states = {p.index for p in dataset.state}
    kept = [o for i, o in enumerate(outputs) if i not in states]
    return kept or list(outputs)


def with_stream_states(dataset: Dataset, fed_states: Mapping[str, np.ndarray]) -> Dataset:
    """``dataset`` whose state arrays hold ``fed_states`` (what a stream fed at each step)."""
    if not fed_states:
        return dataset
    return replace(dataset, arrays={**dataset.arrays, **fed_states})


def zero_states(
    graph: Graph, samples: int, state: Sequence[StatePair], whole: Sequence[str]
) -> dict[str, np.ndarray]:
    """Zero state arrays for ``samples`` samples, stacked the way ``Dataset`` stores them."""
    arrays = {}
    for pair in state:
        spec = graph.input(pair.input)
        dims = tuple(int(d) for d in spec.shape)
        shape = (samples, *dims) if pair.input in whole else (samples, *dims[1:])
        arrays[pair.input] = np.zeros(shape, dtype=np.dtype(spec.dtype))
    return arrays
