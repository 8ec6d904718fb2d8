// The canvas toolbar: layout, undo/redo (also Ctrl+Z / Ctrl+Shift+Z / Ctrl+Y), delete, folding, graph search,
// the graph's totals and state (checking, errors, valid, saved), Discard and Save version.
import { useEffect } from "react";
import GraphSearch from "./GraphSearch.jsx";
import { fmtCount } from "./model.js";

// Layer count, MACs and parameters of the drawn graph: the live (checked) figures where Python sent them.
export function graphTotals(nodes, liveNodes) {
  let macs = 0, params = 0, count = 0;
  for (const n of nodes) {
    if (n.data.kind !== "op") continue;
    count += 1;
    const info = liveNodes[n.id];
    macs += info ? info.macs : n.data.macs || 0;
    params += info ? info.params : n.data.params || 0;
  }
  return { nodes: count, macs, params };
}

// Undo and redo from the keyboard, except while the user types in a field.
export function useUndoKeys(travel) {
  useEffect(() => {
    const onKey = (e) => {
      if (["INPUT", "SELECT", "TEXTAREA"].includes(e.target?.tagName)) return;
      const mod = e.ctrlKey || e.metaKey;
      if (mod && e.key.toLowerCase() === "z") {
        e.preventDefault();
        if (e.shiftKey) travel("redo", "undo");
        else travel("undo", "redo");
      } else if (mod && e.key.toLowerCase() === "y") {
        e.preventDefault();
        travel("redo", "undo");
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [travel]);
}

export default function Toolbar({ name, nodes, totals, errorCount, checking, liveOn, dirty, saving, failedSave,
  canUndo, canRedo, canDelete, blockCount, foldedCount, on }) {
  let status;
  if (saving) status = <span className="ts-status-saving">Saving version…</span>;
  else if (failedSave) status = <span className="ts-status-bad">Not saved: fix the marked nodes</span>;
  else if (dirty) status = <span className="ts-status-dirty">● Unsaved changes</span>;
  else status = <span className="ts-status-ok">Saved</span>;
  return (
    <div className="ts-toolbar">
      <div className="ts-title" title={name}>{name}</div>
      <button className="ts-btn" onClick={on.relayout} title="Lay the graph out top to bottom (dagre)">Auto layout</button>
      <button className="ts-btn" onClick={on.fit}>Fit</button>
      <button className="ts-btn" onClick={on.undo} disabled={!canUndo} title="Undo (Ctrl+Z)">Undo</button>
      <button className="ts-btn" onClick={on.redo} disabled={!canRedo} title="Redo (Ctrl+Shift+Z)">Redo</button>
      <button className="ts-btn" onClick={on.deleteSelection} disabled={!canDelete} title="Delete the selection (Delete key)">Delete</button>
      {blockCount > 0 && (foldedCount < blockCount
        ? <button className="ts-btn" onClick={() => on.foldAll(true)} title="Fold every block (layers named blockN_…) into one card">Fold blocks</button>
        : <button className="ts-btn" onClick={() => on.foldAll(false)} title="Show every layer">Unfold all</button>)}
      <GraphSearch nodes={nodes} onPick={on.pick} />
      <div className="ts-spacer" />
      <div className="ts-status">
        <span>{totals.nodes} layers · {fmtCount(totals.macs)} MACs · {fmtCount(totals.params)} params</span>
        {checking ? <span className="ts-status-check">checking…</span>
          : errorCount ? <span className="ts-status-bad">{errorCount} error{errorCount > 1 ? "s" : ""}</span>
            : liveOn && dirty ? <span className="ts-status-ok">valid</span> : null}
        {status}
      </div>
      <button className="ts-btn" onClick={on.discard} disabled={!dirty && !failedSave}>Discard</button>
      <button className="ts-btn ts-btn-primary" onClick={on.save} disabled={!dirty || saving}>Save version</button>
    </div>
  );
}
