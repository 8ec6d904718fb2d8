// The side panel: the selected node's layer parameters and attributes as typed form fields, its inputs,
// parameters, outputs and cost; the graph summary and error list when nothing is selected.
import { useEffect, useState } from "react";
import { fieldText, fmtCount, fmtShape, parseField } from "./model.js";

function Field({ spec, value, onCommit, nodeId }) {
  const [text, setText] = useState(fieldText(value));
  const [problem, setProblem] = useState(null);
  useEffect(() => {
    setText(fieldText(value));
    setProblem(null);
  }, [value, nodeId]);
  const label = spec.name.replace(/_/g, " ");
  const defaultText = spec.default == null ? "" : fieldText(spec.default);
  const title = spec.help || (spec.required ? "required" : defaultText ? `default: ${defaultText}` : "optional");

  if (spec.kind === "bool") {
    return (
      <label className="ts-field ts-field-bool" title={title}>
        <input type="checkbox" checked={Boolean(value)} onChange={(e) => onCommit(e.target.checked)} />
        <span>{label}</span>
      </label>
    );
  }
  if (spec.choices) {
    return (
      <label className="ts-field" title={title}>
        <span className="ts-label">{label}{spec.required ? " *" : ""}</span>
        <select value={value == null ? "" : String(value)}
          onChange={(e) => {
            const raw = e.target.value;
            if (raw === "") return onCommit(null);
            const choice = spec.choices.find((c) => String(c) === raw);
            onCommit(choice === undefined ? raw : choice);
          }}>
          <option value="">{defaultText ? `default (${defaultText})` : "unset"}</option>
          {spec.choices.map((c) => <option key={String(c)} value={String(c)}>{String(c)}</option>)}
        </select>
      </label>
    );
  }
  const commit = () => {
    const parsed = parseField(spec.kind, text);
    if (!parsed.ok) {
      setProblem(`${label} must be ${parsed.message}`);
      return;
    }
    setProblem(null);
    const same = JSON.stringify(parsed.value) === JSON.stringify(value ?? null);
    if (!same) onCommit(parsed.value);
  };
  return (
    <label className={`ts-field${problem ? " invalid" : ""}`} title={title}>
      <span className="ts-label">{label}{spec.required ? " *" : ""}
        <span className="ts-kind">{spec.kind}</span></span>
      <input type="text" value={text} placeholder={defaultText || (spec.kind === "ints" ? "e.g. 3, 3" : "")}
        spellCheck={false}
        onChange={(e) => setText(e.target.value)}
        onBlur={commit}
        onKeyDown={(e) => {
          if (e.key === "Enter") commit();
          if (e.key === "Escape") { setText(fieldText(value)); setProblem(null); }
        }} />
      {problem && <span className="ts-field-problem">{problem}</span>}
    </label>
  );
}

function Section({ title, children }) {
  return (
    <div className="ts-section">
      <div className="ts-section-title">{title}</div>
      {children}
    </div>
  );
}

export default function Inspector({ node, edge, block, schemaOf, errors, live, totals, errorList, onPatch, onDelete, onSelect,
  onToggleBlock, blockOf, docName }) {
  if (block) {
    return (
      <div className="ts-inspector">
        <div className="ts-ins-title">Block {block.data.key} <span className="ts-muted">{block.data.members.length} layers</span></div>
        <button className="ts-btn" onClick={() => onToggleBlock(block.data.key, true)}>▸ Unfold block</button>
        <Section title="Layers">
          <div className="ts-block-members">
            {block.data.members.map((id) => (
              <button key={id} className="ts-block-member" onClick={() => onSelect(id)}>
                <span>{id}</span>{errors[id] && <span className="ts-status-bad">!</span>}
              </button>
            ))}
          </div>
        </Section>
      </div>
    );
  }
  if (edge) {
    return (
      <div className="ts-inspector">
        <div className="ts-ins-title">Connection</div>
        <div className="ts-muted">{edge.source} <b>{edge.sourceHandle}</b> → {edge.target} <b>{edge.targetHandle}</b></div>
        <button className="ts-btn ts-btn-danger" onClick={onDelete}>Delete connection</button>
      </div>
    );
  }
  if (!node) {
    return (
      <div className="ts-inspector">
        <div className="ts-ins-title">{docName}</div>
        <div className="ts-stats">
          <div><span>{totals.nodes}</span>layers</div>
          <div><span>{fmtCount(totals.macs)}</span>MACs</div>
          <div><span>{fmtCount(totals.params)}</span>params</div>
        </div>
        {errorList.length > 0 ? (
          <Section title={`${errorList.length} problem${errorList.length > 1 ? "s" : ""}`}>
            {errorList.map(([id, msg]) => (
              <button key={id} className="ts-error-item" onClick={() => onSelect(id)}>
                <b>{id === "__graph__" ? "graph" : id}</b> {msg}
              </button>
            ))}
          </Section>
        ) : (
          <div className="ts-ok">No problems found.</div>
        )}
        <Section title="How to">
          <ul className="ts-help">
            <li>Drag a layer from the palette onto an arrow to insert it there, or onto the canvas; click a layer to append it after the selected node (or before the output).</li>
            <li><b>Find a node</b> (toolbar) searches the graph by name and jumps there; large graphs fold their blocks: double-click a block to unfold it.</li>
            <li>Connect by dragging from a node's bottom handle to another node's top handle.</li>
            <li>Select a node to edit it here; <kbd>Delete</kbd> removes the selection; <kbd>Ctrl</kbd>+<kbd>Z</kbd> undoes.</li>
            <li>Edits stay in the browser until you click <b>Save version</b>.</li>
          </ul>
        </Section>
      </div>
    );
  }
  const d = node.data;
  const error = errors[node.id];
  if (d.kind === "input" || d.kind === "output") {
    return (
      <div className="ts-inspector">
        <div className="ts-ins-title">{d.kind === "input" ? "Graph input" : "Graph output"}</div>
        <div className="ts-muted">{d.tensor || node.id}</div>
        {error && <div className="ts-error-box">{error}</div>}
        {d.kind === "input" && (
          <Section title="Tensor">
            <Field nodeId={node.id} spec={{ name: "shape", kind: "ints", required: true, help: "batch first, e.g. 1, 3, 32, 32" }}
              value={d.shape} onCommit={(v) => onPatch(node.id, { shape: v })} />
            <div className="ts-kv"><span>dtype</span><span>{d.dtype || "float32"}</span></div>
          </Section>
        )}
        <button className="ts-btn ts-btn-danger" onClick={onDelete}>Delete node</button>
      </div>
    );
  }
  const schema = schemaOf(d.op);
  const info = live[node.id];
  const L = d.layer || null;
  const layerFields = L ? (schema.layer || []).filter((f) => !(f.hide_if && L[f.hide_if]) && !(f.show_if && !L[f.show_if])) : [];
  const attrFields = (schema.attrs || []).filter((f) => !f.hidden);
  const outputs = info?.outputs || d.outputs || [];
  return (
    <div className="ts-inspector">
      <div className="ts-ins-title">{d.op} <span className="ts-muted">{node.id}</span></div>
      {blockOf(node.id) && (
        <button className="ts-btn" onClick={() => onToggleBlock(blockOf(node.id), false)}
          title="Fold the layers of this block into one card">▾ Fold block {blockOf(node.id)}</button>
      )}
      {schema.doc && <div className="ts-doc">{schema.doc}</div>}
      {error && <div className="ts-error-box">{error}</div>}
      {layerFields.length > 0 && (
        <Section title="Layer">
          {layerFields.map((f) => (
            <Field key={f.name} nodeId={node.id} spec={f} value={L[f.name]}
              onCommit={(v) => onPatch(node.id, { layer: { ...L, [f.name]: v } })} />
          ))}
        </Section>
      )}
      {attrFields.length > 0 && (
        <Section title="Attributes">
          {attrFields.map((f) => (
            <Field key={f.name} nodeId={node.id} spec={f} value={(d.attrs || {})[f.name]}
              onCommit={(v) => {
                const attrs = { ...(d.attrs || {}) };
                if (v == null) delete attrs[f.name];
                else attrs[f.name] = v;
                onPatch(node.id, { attrs });
              }} />
          ))}
        </Section>
      )}
      <Section title="Tensors">
        {(d.slots || []).map((s, i) => (
          s.kind === "absent" ? null : (
            <div className="ts-kv" key={i}>
              <span>{s.kind === "param" ? "◆ " : "▸ "}{s.role}</span>
              <span>{fmtShape(info?.slots?.[i]?.shape ?? s.shape)}</span>
            </div>
          )
        ))}
        {outputs.map((o, j) => (
          <div className="ts-kv" key={`o${j}`}><span>◂ out{j}</span><span>{fmtShape(o.shape)} {o.dtype && o.dtype !== "float32" ? o.dtype : ""}</span></div>
        ))}
        <div className="ts-kv"><span>MACs</span><span>{fmtCount(info ? info.macs : d.macs)}</span></div>
        <div className="ts-kv"><span>params</span><span>{fmtCount(info ? info.params : d.params)}</span></div>
      </Section>
      <button className="ts-btn ts-btn-danger" onClick={onDelete}>Delete node</button>
    </div>
  );
}
