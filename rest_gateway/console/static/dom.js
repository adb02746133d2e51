// Tiny DOM helpers: every text goes in as a text node, so no API value is ever parsed as HTML.
const SVG = "http://www.w3.org/2000/svg";

function build(el, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith("on")) el.addEventListener(name.slice(2), value);
    else if (name === "class") el.setAttribute("class", value);
    else el.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

export function h(tag, attrs, ...children) {
  return build(document.createElement(tag), attrs, children);
}

export function s(tag, attrs, ...children) {
  return build(document.createElementNS(SVG, tag), attrs, children);
}

export const fmt = {
  int: (n) => (n === null || n === undefined ? "—" : Number(n).toLocaleString("en-US")),
  pct: (x) => (x === null || x === undefined ? "—" : `${(x * 100).toFixed(1)}%`),
  conf: (x) => (x === null || x === undefined ? "—" : Number(x).toFixed(2)),
  seconds: (x) => {
    if (x === null || x === undefined) return "—";
    if (x < 120) return `${x.toFixed(x < 10 ? 1 : 0)}s`;
    if (x < 7200) return `${(x / 60).toFixed(1)} min`;
    return `${(x / 3600).toFixed(1)} h`;
  },
  time: (iso) => (iso ? iso.replace("T", " ").replace("Z", " UTC") : "—"),
  short: (id, n = 10) => (id && id.length > n + 1 ? `${id.slice(0, n)}…` : id || "—"),
};

export function saveJson(name, value) {
  const blob = new Blob([JSON.stringify(value, null, 2)], { type: "application/json" });
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}
