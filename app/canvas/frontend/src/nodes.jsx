// Node cards: a layer (op) node, and the graph's input and output nodes.
import { createContext, memo, useContext } from "react";
import { Handle, Position } from "@xyflow/react";
import { CATEGORY_COLORS, fmtCount, fmtShape, summary } from "./model.js";

// Errors, live shapes and the op -> category map, shared by every card without copying them into node data.
export const CanvasContext = createContext({ errors: {}, live: {}, categoryOf: () => "More ops", found: null,
  byId: new Map(), toggleBlock: () => {} });

function spread(k, n) {
  return { left: `${((k + 1) * 100) / (n + 1)}%` };
}

function ErrorStrip({ message }) {
  return message ? <div className="ts-node-error" title={message}>{message}</div> : null;
}

export const LayerNode = memo(function LayerNode({ id, data, selected }) {
  const { errors, live, categoryOf, found } = useContext(CanvasContext);
  const info = live[id];
  const color = CATEGORY_COLORS[categoryOf(data.op)] || CATEGORY_COLORS["More ops"];
  const slots = (data.slots || []).map((s, i) => ({ ...s, i }));
  const dataSlots = slots.filter((s) => s.kind === "data");
  const nOut = data.n_outputs || (data.outputs || []).length || 1;
  const outputs = info?.outputs || data.outputs || [];
  const macs = info ? info.macs : data.macs;
  const params = info ? info.params : data.params;
  const paramSlots = slots
    .filter((s) => s.kind === "param")
    .map((s) => ({ role: s.role, shape: info?.slots?.[s.i]?.shape ?? s.shape, dtype: info?.slots?.[s.i]?.dtype ?? s.dtype }));
  const error = errors[id];
  const line = summary(data);
  return (
    <div className={`ts-node${selected ? " selected" : ""}${error ? " has-error" : ""}${found === id ? " ts-found" : ""}`} style={{ "--cat": color }}>
      {dataSlots.map((s, k) => (
        <Handle key={s.i} type="target" position={Position.Top} id={`in${s.i}`} style={spread(k, dataSlots.length)}
          title={`${s.role}${s.shape ? " " + fmtShape(s.shape) : ""}`} />
      ))}
      <div className="ts-node-head">
        <span className="ts-op">{data.op}</span>
        <span className="ts-name" title={id}>{id}</span>
      </div>
      <div className="ts-node-body">
        {line && <div className="ts-summary">{line}</div>}
        {paramSlots.length > 0 && (
          <div className="ts-params">
            {paramSlots.map((p, k) => (
              <span key={k} className="ts-chip" title={`${p.role}: ${fmtShape(p.shape)} ${p.dtype || ""}`}>
                {p.role} {p.shape ? fmtShape(p.shape) : "new"}
              </span>
            ))}
          </div>
        )}
        <div className="ts-shape">
          → {outputs.length ? outputs.map((o) => fmtShape(o.shape)).join(", ") : "?"}
          {outputs[0]?.dtype && outputs[0].dtype !== "float32" ? <span className="ts-dtype"> {outputs[0].dtype}</span> : null}
        </div>
        {(macs > 0 || params > 0) && (
          <div className="ts-cost">{fmtCount(macs)} MACs · {fmtCount(params)} params</div>
        )}
      </div>
      <ErrorStrip message={error} />
      {Array.from({ length: nOut }, (_, j) => (
        <Handle key={j} type="source" position={Position.Bottom} id={`out${j}`} style={spread(j, nOut)} />
      ))}
    </div>
  );
});

export const InputNode = memo(function InputNode({ id, data, selected }) {
  const { errors } = useContext(CanvasContext);
  return (
    <div className={`ts-io ts-io-in${selected ? " selected" : ""}${errors[id] ? " has-error" : ""}`}>
      <div className="ts-io-kind">Input</div>
      <div className="ts-io-name" title={data.tensor}>{data.tensor || id}</div>
      <div className="ts-shape">{fmtShape(data.shape)} {data.dtype && data.dtype !== "float32" ? data.dtype : ""}</div>
      <ErrorStrip message={errors[id]} />
      <Handle type="source" position={Position.Bottom} id="out0" />
    </div>
  );
});

export const OutputNode = memo(function OutputNode({ id, data, selected }) {
  const { errors, live, byId } = useContext(CanvasContext);
  const shape = live[id]?.outputs?.[0]?.shape ?? data.shape;
  // A blank canvas returns its input as is: say so rather than naming the output "input".
  const tensor = live[id]?.outputs?.[0]?.tensor ?? data.tensor;
  const passthrough = tensor && [...byId.values()].some((n) => n.data.kind === "input" && n.data.tensor === tensor);
  return (
    <div className={`ts-io ts-io-out${selected ? " selected" : ""}${errors[id] ? " has-error" : ""}`}>
      <Handle type="target" position={Position.Top} id="in0" />
      <div className="ts-io-kind">Output</div>
      <div className="ts-io-name" title={data.tensor || ""}>{passthrough ? `= ${tensor} (no layers yet)` : tensor || id}</div>
      {shape && <div className="ts-shape">{fmtShape(shape)}</div>}
      <ErrorStrip message={errors[id]} />
    </div>
  );
});

// A folded block: its name, layer count, the ops inside, its output shape and cost; double-click or ▸ unfolds.
export const BlockNode = memo(function BlockNode({ data, selected }) {
  const { errors, live, categoryOf, byId, toggleBlock } = useContext(CanvasContext);
  const members = data.members.map((m) => byId.get(m)).filter(Boolean);
  const ops = new Map();
  let macs = 0;
  let params = 0;
  for (const n of members) {
    ops.set(n.data.op, (ops.get(n.data.op) || 0) + 1);
    const info = live[n.id];
    macs += info ? info.macs : n.data.macs || 0;
    params += info ? info.params : n.data.params || 0;
  }
  const last = members[members.length - 1];
  const outputs = last ? live[last.id]?.outputs || last.data.outputs || [] : [];
  const bad = members.filter((n) => errors[n.id]).length;
  const main = members.find((n) => ["Conv", "Gemm", "MatMul"].includes(n.data.op)) || members[0];
  const color = CATEGORY_COLORS[categoryOf(main?.data.op)] || CATEGORY_COLORS["More ops"];
  return (
    <div className={`ts-node ts-block${selected ? " selected" : ""}${bad ? " has-error" : ""}`} style={{ "--cat": color }}>
      <Handle type="target" position={Position.Top} id="in0" isConnectable={false} />
      <div className="ts-node-head">
        <span className="ts-op">{data.key}</span>
        <span className="ts-name">{members.length} layers</span>
      </div>
      <div className="ts-node-body">
        <div className="ts-summary">{[...ops.entries()].map(([op, k]) => (k > 1 ? `${op}×${k}` : op)).join(" · ")}</div>
        <div className="ts-shape">→ {outputs.length ? outputs.map((o) => fmtShape(o.shape)).join(", ") : "?"}</div>
        {(macs > 0 || params > 0) && <div className="ts-cost">{fmtCount(macs)} MACs · {fmtCount(params)} params</div>}
        <button className="ts-unfold nodrag" onClick={() => toggleBlock(data.key, true)} title="Show the layers of this block">▸ Unfold</button>
      </div>
      {bad > 0 && <ErrorStrip message={`${bad} layer${bad > 1 ? "s have" : " has"} a problem: unfold to see`} />}
      <Handle type="source" position={Position.Bottom} id="out0" isConnectable={false} />
    </div>
  );
});

export const nodeTypes = { layer: LayerNode, graphInput: InputNode, graphOutput: OutputNode, block: BlockNode };
