// The layer palette: drag an entry onto the canvas, or click it to append it after the selected node.
import { useMemo, useState } from "react";
import { CATEGORY_COLORS } from "./model.js";

export const DRAG_TYPE = "application/x-tinystudio-layer";

export default function Palette({ palette, onAdd }) {
  const [query, setQuery] = useState("");
  const [open, setOpen] = useState({ "More ops": false });
  const groups = useMemo(() => {
    const q = query.trim().toLowerCase();
    const out = new Map();
    for (const e of palette) {
      const hay = `${e.label} ${e.op} ${e.category} ${e.type}`.toLowerCase();
      if (q && !hay.includes(q)) continue;
      if (!out.has(e.category)) out.set(e.category, []);
      out.get(e.category).push(e);
    }
    return [...out.entries()];
  }, [palette, query]);
  return (
    <div className="ts-palette">
      <input className="ts-search" placeholder="Search layers…" value={query} onChange={(e) => setQuery(e.target.value)} />
      <div className="ts-palette-list">
        {groups.map(([cat, entries]) => {
          const isOpen = query ? true : open[cat] !== false;
          return (
            <div key={cat} className="ts-cat">
              <button className="ts-cat-title" onClick={() => setOpen({ ...open, [cat]: !isOpen })}>
                <span className="ts-dot" style={{ background: CATEGORY_COLORS[cat] || "#6b7280" }} />
                {cat}<span className="ts-count">{entries.length}</span><span className="ts-caret">{isOpen ? "▾" : "▸"}</span>
              </button>
              {isOpen && entries.map((e) => (
                <div key={e.type} className="ts-pal-item" draggable title={e.doc}
                  onDragStart={(ev) => {
                    ev.dataTransfer.setData(DRAG_TYPE, e.type);
                    ev.dataTransfer.effectAllowed = "move";
                  }}
                  onClick={() => onAdd(e, null)}>
                  <span>{e.label}</span>
                  {e.label !== e.op && e.kind === "op" && <span className="ts-pal-op">{e.op}</span>}
                </div>
              ))}
            </div>
          );
        })}
      </div>
    </div>
  );
}
