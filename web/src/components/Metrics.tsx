// CPU, memory and network charts of an instance (uPlot, loaded only on this tab).
import { useEffect, useRef, useState } from "react";
import { useQuery } from "@tanstack/react-query";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { api } from "../api";
import { formatBytes } from "../lib/format";
import type { MetricSeries } from "../types";
import { ErrorBox, Loading } from "./ui";

const PERIODS = [
  ["5m", "5 min"],
  ["1h", "1 hour"],
  ["1d", "1 day"],
] as const;

/** Bytes per second between consecutive counter samples (0 after a counter reset). */
export function rates(times: number[], counters: number[]): number[] {
  return counters.map((c, n) => {
    if (n === 0) return 0;
    const dt = (times[n] as number) - (times[n - 1] as number);
    const dv = c - (counters[n - 1] as number);
    return dt > 0 && dv >= 0 ? dv / dt : 0;
  });
}

function Chart({ title, data, series, fmt }: { title: string; data: uPlot.AlignedData; series: { label: string; stroke: string }[]; fmt: (v: number) => string }) {
  const el = useRef<HTMLDivElement>(null);
  useEffect(() => {
    if (!el.current) return;
    const dark = window.matchMedia?.("(prefers-color-scheme: dark)").matches;
    const axis = { stroke: dark ? "#9aa4b2" : "#5b6470", grid: { stroke: dark ? "#2c323c" : "#e5e8ec" }, ticks: { stroke: dark ? "#2c323c" : "#e5e8ec" } };
    const width = Math.max(260, el.current.clientWidth);
    const plot = new uPlot(
      {
        width,
        height: 200,
        series: [{}, ...series.map((s) => ({ ...s, width: 2, value: (_u: uPlot, v: number | null) => (v === null ? "—" : fmt(v)) }))],
        axes: [axis, { ...axis, size: 70, values: (_u: uPlot, vals: number[]) => vals.map(fmt) }],
        scales: { y: { range: (_u, min, max) => [0, Math.max(max, min + 1e-9) * 1.1] } },
      },
      data,
      el.current,
    );
    const ro = new ResizeObserver(() => el.current && plot.setSize({ width: Math.max(260, el.current.clientWidth), height: 200 }));
    ro.observe(el.current);
    return () => {
      ro.disconnect();
      plot.destroy();
    };
  }, [data, series, fmt]);
  return (
    <section className="panel" aria-label={title}>
      <h3>{title}</h3>
      <div ref={el} role="img" aria-label={`${title} chart`} />
    </section>
  );
}

const CPU = [{ label: "CPU %", stroke: "#2563eb" }];
const MEM = [{ label: "memory", stroke: "#16a34a" }];
const NET = [
  { label: "received/s", stroke: "#9333ea" },
  { label: "sent/s", stroke: "#ea580c" },
];
const pct = (v: number) => `${v.toFixed(v < 1 ? 2 : v < 10 ? 1 : 0)}%`;
const rate = (v: number) => `${formatBytes(v)}/s`;

export default function Metrics({ id }: { id: string }) {
  const [period, setPeriod] = useState<string>("5m");
  const q = useQuery({
    queryKey: ["metrics", id, period],
    queryFn: () => api.get<MetricSeries>(`/v1/instances/${encodeURIComponent(id)}/metrics?period=${period}`),
    refetchInterval: period === "5m" ? 10_000 : 60_000,
  });
  const pts = q.data?.points ?? [];
  const t = pts.map((p) => new Date(p.time).getTime() / 1000);
  return (
    <div className="stack">
      <div className="row" role="group" aria-label="Period">
        {PERIODS.map(([v, label]) => (
          <button key={v} type="button" className={period === v ? "small" : "secondary small"} aria-pressed={period === v} onClick={() => setPeriod(v)}>
            {label}
          </button>
        ))}
        <span className="muted small">{q.data ? `${pts.length} points, every ${q.data.resolution_secs} s` : ""}</span>
      </div>
      {q.isPending ? (
        <Loading />
      ) : q.error ? (
        <ErrorBox error={q.error} />
      ) : pts.length === 0 ? (
        <p className="muted">No samples yet: the sampler records a point every 10 seconds while the instance runs.</p>
      ) : (
        <div className="grid">
          <Chart title="CPU" data={[t, pts.map((p) => p.cpu_percent)]} series={CPU} fmt={pct} />
          <Chart title="Memory" data={[t, pts.map((p) => p.memory_bytes)]} series={MEM} fmt={formatBytes} />
          <Chart title="Network" data={[t, rates(t, pts.map((p) => p.net_rx_bytes)), rates(t, pts.map((p) => p.net_tx_bytes))]} series={NET} fmt={rate} />
        </div>
      )}
    </div>
  );
}
