// A sparkline: uPlot drawing one series of a queue's ring buffer, no axes, no legend.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import type { Sample } from "./lib.js";

export function Spark({ data, field, label }: { data: Sample[]; field: "depth" | "throughput" | "oldestS"; label: string }) {
  const el = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const xs = data.map((s) => s.t);
  const ys = data.map((s) => s[field]);
  useEffect(() => {
    if (!el.current) return;
    const color = getComputedStyle(document.documentElement).getPropertyValue("--chart").trim() || "#0969da";
    plot.current = new uPlot(
      {
        width: 140,
        height: 32,
        cursor: { show: false },
        legend: { show: false },
        select: { show: false, left: 0, top: 0, width: 0, height: 0 },
        axes: [{ show: false }, { show: false }],
        scales: { x: { time: false }, y: { range: (_u, _min, max) => [-Math.max(1, max) * 0.08, Math.max(1, max) * 1.1] } },
        series: [{}, { stroke: color, width: 1.5, fill: color + "33", points: { show: false } }],
      },
      [xs, ys],
      el.current,
    );
    return () => plot.current?.destroy();
  }, []);
  useEffect(() => {
    plot.current?.setData([xs, ys]);
  });
  const last = ys[ys.length - 1];
  return (
    <span class="spark" title={`${label}: ${last === undefined ? "-" : Math.round(last * 10) / 10}`} aria-label={label}>
      <div ref={el} />
    </span>
  );
}
