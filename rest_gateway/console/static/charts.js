// Charts drawn as inline SVG: nothing to load, readable by screen readers through aria-label.
import { fmt, h, s } from "./dom.js";

export const STATUS_ORDER = ["pending", "in_progress", "verified", "settled", "failed", "cancelled", "expired"];
export const STATUS_LABEL = {
  pending: "Pending",
  in_progress: "In progress",
  verified: "Verified",
  settled: "Settled",
  failed: "Failed",
  cancelled: "Cancelled",
  expired: "Expired",
};

export function statusBar(byStatus, total) {
  const parts = STATUS_ORDER.filter((st) => byStatus[st] > 0);
  const summary = parts.map((st) => `${STATUS_LABEL[st]} ${fmt.int(byStatus[st])}`).join(", ");
  const svg = s("svg", {
    class: "status-bar",
    viewBox: "0 0 1000 28",
    preserveAspectRatio: "none",
    role: "img",
    "aria-label": `Status mix: ${summary || "no tasks"}`,
  });
  let x = 0;
  for (const st of parts) {
    const w = (byStatus[st] / total) * 1000;
    svg.append(s("rect", { x, y: 0, width: w, height: 28, class: `fill-${st}` }, s("title", {}, `${STATUS_LABEL[st]}: ${fmt.int(byStatus[st])}`)));
    x += w;
  }
  if (!parts.length) svg.append(s("rect", { x: 0, y: 0, width: 1000, height: 28, class: "fill-empty" }));
  const legend = h(
    "ul",
    { class: "legend" },
    parts.map((st) => h("li", {}, h("span", { class: `swatch fill-${st}`, "aria-hidden": "true" }), `${STATUS_LABEL[st]} ${fmt.pct(byStatus[st] / total)}`)),
  );
  return h("div", { class: "chart" }, svg, legend);
}

export function lineChart(points) {
  const W = 600;
  const H = 180;
  const pad = { l: 36, r: 10, t: 10, b: 26 };
  const max = Math.max(1, ...points.map((p) => p.count));
  const x = (i) => pad.l + (i * (W - pad.l - pad.r)) / Math.max(1, points.length - 1);
  const y = (n) => H - pad.b - (n * (H - pad.t - pad.b)) / max;
  const total = points.reduce((a, p) => a + p.count, 0);
  const svg = s("svg", {
    class: "line-chart",
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-label": `Tasks per day over the last ${points.length} days: ${fmt.int(total)} in all, at most ${fmt.int(max)} in a day`,
  });
  svg.append(s("line", { x1: pad.l, y1: H - pad.b, x2: W - pad.r, y2: H - pad.b, class: "axis" }));
  svg.append(s("line", { x1: pad.l, y1: pad.t, x2: pad.l, y2: H - pad.b, class: "axis" }));
  svg.append(s("text", { x: pad.l - 6, y: pad.t + 8, class: "tick", "text-anchor": "end" }, fmt.int(max)));
  svg.append(s("text", { x: pad.l - 6, y: H - pad.b, class: "tick", "text-anchor": "end" }, "0"));
  for (const i of [0, Math.floor((points.length - 1) / 2), points.length - 1]) {
    if (points[i]) svg.append(s("text", { x: x(i), y: H - 6, class: "tick", "text-anchor": "middle" }, points[i].date.slice(5)));
  }
  svg.append(s("polyline", { class: "line", points: points.map((p, i) => `${x(i)},${y(p.count)}`).join(" ") }));
  points.forEach((p, i) => svg.append(s("circle", { cx: x(i), cy: y(p.count), r: 3, class: "dot" }, s("title", {}, `${p.date}: ${fmt.int(p.count)}`))));
  return h("div", { class: "chart" }, svg);
}

export function histogram(bins) {
  const W = 600;
  const H = 180;
  const pad = { l: 36, b: 26, t: 10 };
  const max = Math.max(1, ...bins.map((b) => b.count));
  const bw = (W - pad.l) / bins.length;
  const svg = s("svg", {
    class: "histogram",
    viewBox: `0 0 ${W} ${H}`,
    role: "img",
    "aria-label": `Confidence histogram: ${bins.map((b) => `${b.min.toFixed(1)}–${b.max.toFixed(1)}: ${b.count}`).join(", ")}`,
  });
  svg.append(s("text", { x: pad.l - 6, y: pad.t + 8, class: "tick", "text-anchor": "end" }, fmt.int(max)));
  bins.forEach((b, i) => {
    const hgt = (b.count / max) * (H - pad.t - pad.b);
    svg.append(
      s("rect", { x: pad.l + i * bw + 2, y: H - pad.b - hgt, width: bw - 4, height: Math.max(hgt, 0), class: "bar" },
        s("title", {}, `${b.min.toFixed(1)}–${b.max.toFixed(1)}: ${fmt.int(b.count)}`)),
    );
    svg.append(s("text", { x: pad.l + i * bw + bw / 2, y: H - 8, class: "tick", "text-anchor": "middle" }, b.min.toFixed(1)));
  });
  svg.append(s("line", { x1: pad.l, y1: H - pad.b, x2: W, y2: H - pad.b, class: "axis" }));
  return h("div", { class: "chart" }, svg);
}

export function labelBars(items) {
  const max = Math.max(1, ...items.map((it) => it.count));
  return h(
    "ul",
    { class: "hbars" },
    items.map((it) =>
      h("li", {},
        h("span", { class: "hbar-label" }, it.label),
        h("span", { class: "hbar-track" }, bar((it.count / max) * 100)),
        h("span", { class: "hbar-count" }, fmt.int(it.count))),
    ),
  );
}

// Set through the CSSOM: the Console's Content-Security-Policy refuses inline style attributes.
function bar(percent) {
  const el = h("span", { class: "hbar" });
  el.style.width = `${percent.toFixed(1)}%`;
  return el;
}
