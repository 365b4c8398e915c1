// The training loss curve as an SVG line chart (no library: a polyline over scaled points).

const SVG = "http://www.w3.org/2000/svg";

function node(tag, attrs, text) {
  const el = document.createElementNS(SVG, tag);
  for (const [key, value] of Object.entries(attrs)) el.setAttribute(key, String(value));
  if (text !== undefined) el.textContent = text;
  return el;
}

// An exponential moving average of the losses: per-step loss is noisy, its trend is what tells training works.
export function smoothed(points, weight = 0.9) {
  let average = null;
  return points.map(([step, loss]) => {
    average = average === null ? loss : weight * average + (1 - weight) * loss;
    return [step, average];
  });
}

// `points` are [step, loss] pairs in step order: drawn faint as they are, and strong as their moving average.
export function lossChart(points, width = 560, height = 200) {
  const pad = { left: 48, right: 12, top: 12, bottom: 28 };
  const svg = node("svg", { viewBox: `0 0 ${width} ${height}`, class: "loss-chart", role: "img",
    "aria-label": points.length ? `Loss curve: ${points.length} points, last loss ${points.at(-1)[1].toFixed(4)}` : "Loss curve: no points yet" });
  const plotW = width - pad.left - pad.right;
  const plotH = height - pad.top - pad.bottom;
  svg.append(node("rect", { x: pad.left, y: pad.top, width: plotW, height: plotH, class: "plot" }));
  if (!points.length) {
    svg.append(node("text", { x: width / 2, y: height / 2, "text-anchor": "middle", class: "axis" }, "waiting for the first steps…"));
    return svg;
  }
  const steps = points.map((p) => p[0]);
  const losses = points.map((p) => p[1]);
  const [x0, x1] = [Math.min(...steps), Math.max(...steps, Math.min(...steps) + 1)];
  let [y0, y1] = [Math.min(...losses), Math.max(...losses)];
  if (y1 - y0 < 1e-9) { y0 -= 0.5; y1 += 0.5; }
  const sx = (x) => pad.left + ((x - x0) / (x1 - x0)) * plotW;
  const sy = (y) => pad.top + (1 - (y - y0) / (y1 - y0)) * plotH;
  for (const fraction of [0, 0.5, 1]) {
    const value = y0 + fraction * (y1 - y0);
    svg.append(node("line", { x1: pad.left, x2: pad.left + plotW, y1: sy(value), y2: sy(value), class: "grid" }));
    svg.append(node("text", { x: pad.left - 6, y: sy(value) + 4, "text-anchor": "end", class: "axis" }, value.toPrecision(3)));
  }
  svg.append(node("text", { x: pad.left, y: height - 8, class: "axis" }, `step ${x0}`));
  svg.append(node("text", { x: pad.left + plotW, y: height - 8, "text-anchor": "end", class: "axis" }, `step ${x1}`));
  const line = (series) => series.map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(" ");
  svg.append(node("polyline", { points: line(points), class: "line raw" }));
  svg.append(node("polyline", { points: line(smoothed(points)), class: "line trend" }));
  return svg;
}
