import { createRoot } from "react-dom/client";
import { useEffect, useState } from "react";
import { Streamlit } from "./streamlit.js";
import App from "./App.jsx";
import "@xyflow/react/dist/style.css";
import "./styles.css";

function Root() {
  const [render, setRender] = useState(null);
  useEffect(() => {
    const off = Streamlit.onRender(setRender);
    Streamlit.setComponentReady();
    return off;
  }, []);
  const height = render?.args?.height ?? 600;
  useEffect(() => Streamlit.setFrameHeight(height), [height]);
  if (!render || !render.args.doc) return <div className="ts-loading">Loading canvas…</div>;
  return <App args={render.args} theme={render.theme} disabled={render.disabled} />;
}

createRoot(document.getElementById("root")).render(<Root />);
