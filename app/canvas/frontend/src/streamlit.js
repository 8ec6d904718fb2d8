// Streamlit's custom component protocol (v1), without streamlit-component-lib and its Arrow dependency:
// we never receive data frames, only JSON arguments.
const listeners = new Set();

function send(type, data) {
  window.parent.postMessage({ isStreamlitMessage: true, type, ...data }, "*");
}

window.addEventListener("message", (event) => {
  const data = event.data;
  if (!data || data.type !== "streamlit:render") return;
  const detail = { args: data.args || {}, disabled: Boolean(data.disabled), theme: data.theme || null };
  listeners.forEach((fn) => fn(detail));
});

export const Streamlit = {
  onRender(fn) {
    listeners.add(fn);
    return () => listeners.delete(fn);
  },
  setComponentReady() {
    send("streamlit:componentReady", { apiVersion: 1 });
  },
  setFrameHeight(height) {
    send("streamlit:setFrameHeight", { height });
  },
  setComponentValue(value) {
    send("streamlit:setComponentValue", { value, dataType: "json" });
  },
};

// A fresh sequence tag per value sent, so that Python tells a new request from a rerun with the same value.
export const nonce = () => `${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}`;
