// A sparkline: uPlot drawing one series of a queue's ring buffer, no axes, no legend. Its
// width is the stylesheet's (.spark: narrower on narrow windows), followed on resize.
import { useEffect, useRef } from "preact/hooks";
import uPlot from "uplot";
import type { Sample } from "./lib.js";

/** The plot's size: the width the stylesheet gives the .spark box. */
function size(box: HTMLElement): { width: number; height: number } {
  return { width: Math.max(40, Math.round(box.getBoundingClientRect().width)), height: 32 };
}

export function Spark({ data, field, label }: { data: Sample[]; field: "depth" | "throughput" | "oldestS"; label: string }) {
  const box = useRef<HTMLSpanElement>(null);
  const el = useRef<HTMLDivElement>(null);
  const plot = useRef<uPlot | null>(null);
  const xs = data.map((s) => s.t);
  const ys = data.map((s) => s[field]);
  useEffect(() => {
    if (!el.current || !box.current) return;
    const color = getComputedStyle(document.documentElement).getPropertyValue("--chart").trim() || "#0969da";
    plot.current = new uPlot(
      {
        ...size(box.current),
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
    const resize = (): void => void (box.current && plot.current?.setSize(size(box.current)));
    addEventListener("resize", resize);
    return () => {
      removeEventListener("resize", resize);
      plot.current?.destroy();
    };
  }, []);
  useEffect(() => {
    plot.current?.setData([xs, ys]);
  });
  const last = ys[ys.length - 1];
  return (
    <span ref={box} class="spark" title={`${label}: ${last === undefined ? "-" : Math.round(last * 10) / 10}`} aria-label={label}>
      <div ref={el} />
    </span>
  );
}
