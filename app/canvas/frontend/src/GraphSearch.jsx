// "Find a node": search the graph by layer name or op, pick a hit to select, centre and highlight it.
import { useState } from "react";
import { searchNodes } from "./model.js";

export default function GraphSearch({ nodes, onPick }) {
  const [query, setQuery] = useState("");
  const [open, setOpen] = useState(false);
  const hits = searchNodes(nodes, query);
  const pick = (id) => {
    onPick(id);
    setOpen(false);
  };
  return (
    <div className="ts-find">
      <input className="ts-find-input" placeholder="Find a node…" value={query} spellCheck={false}
        aria-label="Find a node in the graph"
        onChange={(e) => { setQuery(e.target.value); setOpen(true); }}
        onFocus={() => setOpen(true)}
        onBlur={() => setTimeout(() => setOpen(false), 150)}
        onKeyDown={(e) => {
          if (e.key === "Enter" && hits.length) pick(hits[0].id);
          if (e.key === "Escape") { setQuery(""); setOpen(false); }
        }} />
      {open && query.trim() && (
        <div className="ts-find-hits">
          {hits.length ? hits.map((n) => (
            <button key={n.id} className="ts-find-hit" onMouseDown={(e) => e.preventDefault()} onClick={() => pick(n.id)}>
              <span>{n.id}</span><span className="ts-pal-op">{n.data.op || n.data.kind}</span>
            </button>
          )) : <div className="ts-find-none">no node matches “{query.trim()}”</div>}
        </div>
      )}
    </div>
  );
}
