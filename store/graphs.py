"""A graph as the store keeps it: structure document, constants blob (deduplicated), hashes and metrics.

    enc = encode_graph(graph)        # all the work a save needs, done before the database lock is taken
    graph = decode_graph(doc, keys, blob)

Constants are keyed by a hash of their names, dtypes, shapes and bytes rather than of the .npz bytes, because
numpy writes a timestamp into every .npz: a restore, a branch or an unchanged save then reuses the stored blob.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

from engine.ir import Graph
from engine.profile import profile_graph
from engine.serialize import content_hash, dumps, loads
from engine.validate import check_structure, topological_order

# Totals kept with every version, so that lists and the history need no graph loaded.
METRIC_KEYS = ("macs", "flops", "params", "layers", "weight_bytes", "quant_bytes")


@dataclass(frozen=True)
class EncodedGraph:
    doc: dict  # serialize.dumps structure without blob_keys
    keys: dict  # npz member -> tensor name
    blob: bytes
    blob_hash: str
    graph_hash: str
    metrics: dict
    layers: list


def constants_hash(graph: Graph) -> str:
    h = hashlib.sha256()
    for t in sorted(graph.tensors.values(), key=lambda t: t.name):
        if t.data is not None:
            a = np.ascontiguousarray(t.data)
            h.update(f"{t.name}\0{t.dtype}\0{a.dtype.str}\0{a.shape}\0".encode())
            h.update(a.tobytes())
    return h.hexdigest()


def graph_metrics(graph: Graph) -> tuple[dict, list[dict]]:
    """(totals, per-layer rows) of a graph; raises GraphError for a graph that does not validate."""
    check_structure(graph)
    prof = profile_graph(graph)
    totals = prof.totals()
    metrics = {k: totals[k] for k in METRIC_KEYS}
    metrics["arena_bytes"] = totals["activation_peak_bytes"]
    # check_structure guarantees every graph input has a tensor
    metrics["inputs"] = [{"name": t, "shape": list(graph.tensors[t].shape), "dtype": graph.tensors[t].dtype}
                         for t in graph.inputs]
    # The profile holds every layer's record (in planned order): list them in topological order without
    # costing every layer a second time.
    records = {lp.record.name: lp.record for lp in prof.layers}
    layers = [{"name": r.name, "op": r.op, "macs": r.macs, "params": r.params, "weight_bytes": r.weight_bytes,
               "output_shape": list(r.output_shape), "output_dtype": r.output_dtype, "output_bytes": r.output_bytes}
              for r in (records[n.name] for n in topological_order(graph))]
    return metrics, layers


def encode_graph(graph: Graph) -> EncodedGraph:
    metrics, layers = graph_metrics(graph)
    doc, blob = dumps(graph)
    keys = doc.pop("blob_keys")
    return EncodedGraph(doc, keys, blob, constants_hash(graph), content_hash(graph), metrics, layers)


def decode_graph(doc: dict, keys: dict, blob: bytes) -> Graph:
    return loads({**doc, "blob_keys": keys}, blob)
