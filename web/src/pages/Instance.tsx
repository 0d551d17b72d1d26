import { lazy, Suspense, useEffect, useMemo, useRef, useState } from "react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { ApiError, api, rawRequest } from "../api";
import { PageHeader } from "../components/Layout";
import { toast } from "../components/toast";
import { ActionButton, Confirm, CopyField, EmptyState, ErrorBox, Loading, StatusBadge } from "../components/ui";
import { formatBytes, formatTime, relativeTime } from "../lib/format";
import { canAct, runAction } from "../lib/instances";
import { InstanceNetwork } from "../components/InstanceNetwork";
import { InstanceVolumes, SnapshotCloneActions } from "../components/InstanceVolumes";
import { navigate } from "../nav";
import { Link, useSearchParams, useTitle } from "../router";
import { useSession } from "../session";
import type { Instance, LogEntry } from "../types";

const Terminal = lazy(() => import("../components/Terminal"));
const Metrics = lazy(() => import("../components/Metrics"));

const TABS = ["overview", "network", "volumes", "logs", "terminal", "metrics"] as const;
type Tab = (typeof TABS)[number];

export function InstancePage({ params }: { params: Record<string, string> }) {
  const key = params.id ?? "";
  useTitle(key);
  const s = useSession();
  const qc = useQueryClient();
  const [search, setSearch] = useSearchParams();
  const tab = (TABS as readonly string[]).includes(search.get("tab") ?? "") ? (search.get("tab") as Tab) : "overview";
  const inst = useQuery({
    queryKey: ["instance", key],
    queryFn: () => api.get<Instance>(`/v1/instances/${encodeURIComponent(key)}`),
  });
  const [confirm, setConfirm] = useState<"stop" | "restart" | "terminate" | null>(null);

  if (inst.isPending) return <Loading />;
  if (inst.error) {
    if (inst.error instanceof ApiError && inst.error.status === 404) {
      return (
        <EmptyState title={`No instance '${key}'`}>
          <p>
            It may have been deleted, or it lives in a project you cannot see. <Link to="/instances">Back to instances</Link>
          </p>
        </EmptyState>
      );
    }
    return <ErrorBox error={inst.error} retry={() => void inst.refetch()} />;
  }
  const i = inst.data;
  const ro = s.readOnly;

  async function act(action: "start" | "stop" | "restart" | "delete") {
    try {
      await runAction(i, action);
      toast.success(`${action === "delete" ? "Terminating" : action[0]?.toUpperCase() + action.slice(1) + "ing"} ${i.name}`);
      void qc.invalidateQueries({ queryKey: ["instance", key] });
      if (action === "delete") {
        void qc.invalidateQueries({ queryKey: ["instances"] });
        navigate("/instances");
      }
    } catch (e) {
      toast.error(e, `${action} failed`);
      throw e;
    }
  }

  const project = s.projects.find((p) => p.id === i.project_id)?.name ?? i.project_id;
  return (
    <>
      <PageHeader
        crumbs={[{ label: "Instances", to: "/instances" }, { label: i.name }]}
        title={
          <span className="row">
            {i.name} <StatusBadge status={i.status} />
          </span>
        }
        actions={
          <>
            <ActionButton className="secondary small" reason={ro ?? (canAct("start", i.status) ? null : `It is ${i.status}`)} onClick={() => void act("start").catch(() => {})}>
              Start
            </ActionButton>
            <ActionButton className="secondary small" reason={ro ?? (canAct("stop", i.status) ? null : `It is ${i.status}`)} onClick={() => setConfirm("stop")}>
              Stop
            </ActionButton>
            <ActionButton className="secondary small" reason={ro ?? (canAct("restart", i.status) ? null : `It is ${i.status}`)} onClick={() => setConfirm("restart")}>
              Restart
            </ActionButton>
            <SnapshotCloneActions i={i} />
            <ActionButton className="danger small" reason={ro ?? (i.status === "terminating" ? "Already terminating" : null)} onClick={() => setConfirm("terminate")}>
              Terminate
            </ActionButton>
          </>
        }
      />
      <div className="tabs" role="tablist" aria-label="Instance">
        {TABS.map((t) => (
          <button
            key={t}
            type="button"
            role="tab"
            id={`tab-${t}`}
            aria-selected={tab === t}
            tabIndex={tab === t ? 0 : -1}
            aria-controls="tabpanel"
            onKeyDown={(e) => {
              // Arrow keys move between tabs (the WAI-ARIA tabs pattern).
              const n = TABS.indexOf(t) + (e.key === "ArrowRight" ? 1 : e.key === "ArrowLeft" ? -1 : 0);
              if (n === TABS.indexOf(t)) return;
              const next = TABS[(n + TABS.length) % TABS.length] as Tab;
              setSearch({ tab: next === "overview" ? null : next });
              document.getElementById(`tab-${next}`)?.focus();
            }}
            className={tab === t ? "tab active" : "tab"}
            onClick={() => setSearch({ tab: t === "overview" ? null : t })}
          >
            {t[0]?.toUpperCase() + t.slice(1)}
          </button>
        ))}
      </div>
      <div id="tabpanel" role="tabpanel" aria-labelledby={`tab-${tab}`}>
        {tab === "overview" && <Overview i={i} project={project} />}
        {tab === "network" && <InstanceNetwork i={i} project={project} />}
        {tab === "volumes" && <InstanceVolumes i={i} project={project} />}
        {tab === "logs" && <Logs id={i.id} />}
        {tab === "terminal" &&
          (ro ? (
            <EmptyState title="Read only">
              <p>{ro}: the terminal needs the operator role.</p>
            </EmptyState>
          ) : i.status !== "running" ? (
            <EmptyState title="Not running">
              <p>The terminal opens a shell in a running instance. Start it first.</p>
            </EmptyState>
          ) : (
            <Suspense fallback={<Loading what="Loading the terminal" />}>
              <Terminal id={i.id} />
            </Suspense>
          ))}
        {tab === "metrics" && (
          <Suspense fallback={<Loading what="Loading charts" />}>
            <Metrics id={i.id} />
          </Suspense>
        )}
      </div>
      {confirm === "stop" && (
        <Confirm title={`Stop ${i.name}?`} body={<p>Its processes get SIGTERM, then SIGKILL after the grace period.</p>} action="Stop" onConfirm={() => act("stop")} onClose={() => setConfirm(null)} />
      )}
      {confirm === "restart" && (
        <Confirm title={`Restart ${i.name}?`} body={<p>It stops and starts again.</p>} action="Restart" onConfirm={() => act("restart")} onClose={() => setConfirm(null)} />
      )}
      {confirm === "terminate" && (
        <Confirm
          title={`Terminate ${i.name}?`}
          body={<p>The instance and its disk are deleted. This cannot be undone.</p>}
          action="Terminate"
          danger
          typed={i.name}
          onConfirm={() => act("delete")}
          onClose={() => setConfirm(null)}
        />
      )}
    </>
  );
}

function Overview({ i, project }: { i: Instance; project: string }) {
  const p = project === "default" ? "" : ` -p ${project}`;
  return (
    <div className="grid">
      <section className="panel" aria-labelledby="h-status">
        <h2 id="h-status">Status</h2>
        <dl className="spec">
          <dt>Status</dt>
          <dd>
            <StatusBadge status={i.status} /> {i.status_reason && <span className="muted">({i.status_reason})</span>}
          </dd>
          <dt>Desired</dt>
          <dd>{i.desired}</dd>
          <dt>Addresses</dt>
          <dd>
            {(i.nics ?? []).length
              ? (i.nics ?? []).map((n) => (
                  <div key={n.name}>
                    <code>{n.ip}</code> <span className="muted small">{n.name} · {n.network}</span>
                  </div>
                ))
              : (i.ip ?? "—")}
          </dd>
          <dt>Security groups</dt>
          <dd>{(i.security_groups ?? []).join(", ") || "—"}</dd>
          <dt>Started</dt>
          <dd title={i.started_at ?? undefined}>{i.started_at ? relativeTime(i.started_at) : "—"}</dd>
          <dt>Exit code</dt>
          <dd>{i.exit_code ?? "—"}</dd>
          <dt>Restarts</dt>
          <dd>{i.restart_count}</dd>
        </dl>
      </section>
      <section className="panel" aria-labelledby="h-spec">
        <h2 id="h-spec">Spec</h2>
        <dl className="spec">
          <dt>Id</dt>
          <dd>
            <code>{i.id}</code>
          </dd>
          <dt>Project</dt>
          <dd>{project}</dd>
          <dt>Image</dt>
          <dd>{i.image}</dd>
          <dt>Size</dt>
          <dd>
            {i.cpus} vCPU · {formatBytes(i.memory_bytes)}
          </dd>
          <dt>Command</dt>
          <dd>{i.command?.length ? <code>{i.command.join(" ")}</code> : "image default"}</dd>
          <dt>Environment</dt>
          <dd>{Object.keys(i.env ?? {}).join(", ") || "—"}</dd>
          <dt>Labels</dt>
          <dd>
            {Object.entries(i.labels ?? {}).map(([k, v]) => (
              <span key={k} className="chip">
                {k}={v}
              </span>
            ))}
            {Object.keys(i.labels ?? {}).length === 0 && "—"}
          </dd>
          <dt>Restart policy</dt>
          <dd>{i.restart}</dd>
          <dt>Created</dt>
          <dd>{formatTime(i.created_at)}</dd>
        </dl>
      </section>
      <section className="panel span2" aria-labelledby="h-connect">
        <h2 id="h-connect">Connect</h2>
        <p className="muted small">From a shell with the roost CLI logged in to this server:</p>
        <CopyField value={`roost exec -it${p} ${i.name} -- sh`} />
        <CopyField value={`roost logs -f${p} ${i.name}`} />
        <CopyField value={`roost cp${p} ./file ${i.name}:/tmp/`} />
        {i.ip && (
          <>
            <p className="muted small">From the Roost host, when the image runs an SSH server:</p>
            <CopyField value={`ssh root@${i.ip}`} />
          </>
        )}
      </section>
    </div>
  );
}

const MAX_LINES = 5000;

/** `text` with each case-insensitive occurrence of `query` marked. */
function Highlight({ text, query }: { text: string; query: string }) {
  if (!query) return <>{text}</>;
  const lower = text.toLowerCase();
  const q = query.toLowerCase();
  const parts = [];
  let at = 0;
  for (let i = lower.indexOf(q); i >= 0; i = lower.indexOf(q, i + q.length)) {
    parts.push(text.slice(at, i), <mark key={i}>{text.slice(i, i + q.length)}</mark>);
    at = i + q.length;
  }
  parts.push(text.slice(at));
  return <>{parts}</>;
}

function Logs({ id }: { id: string }) {
  const [lines, setLines] = useState<LogEntry[]>([]);
  const [paused, setPaused] = useState(false);
  const [query, setQuery] = useState("");
  const [state, setState] = useState<"connecting" | "following" | "ended" | "error">("connecting");
  const [error, setError] = useState<string | null>(null);
  const pending = useRef<LogEntry[]>([]);
  const pausedRef = useRef(paused);
  pausedRef.current = paused;
  const box = useRef<HTMLDivElement>(null);

  useEffect(() => {
    const ctl = new AbortController();
    let flush: ReturnType<typeof setInterval> | undefined;
    (async () => {
      try {
        const res = await rawRequest("GET", `/v1/instances/${encodeURIComponent(id)}/logs?tail=500&follow=true`, undefined, undefined, ctl.signal);
        setState("following");
        const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
        let buf = "";
        flush = setInterval(() => {
          if (pausedRef.current || pending.current.length === 0) return;
          const add = pending.current;
          pending.current = [];
          setLines((old) => [...old, ...add].slice(-MAX_LINES));
        }, 200);
        for (;;) {
          const { value, done } = await reader.read();
          if (done) break;
          buf += value;
          let nl;
          while ((nl = buf.indexOf("\n")) >= 0) {
            const raw = buf.slice(0, nl);
            buf = buf.slice(nl + 1);
            if (!raw.trim()) continue;
            try {
              pending.current.push(JSON.parse(raw) as LogEntry);
            } catch {
              pending.current.push({ time: "", stream: "stdout", line: raw });
            }
          }
        }
        setState("ended");
      } catch (e) {
        if (ctl.signal.aborted) return;
        setState("error");
        setError(e instanceof Error ? e.message : String(e));
      }
    })();
    return () => {
      ctl.abort();
      if (flush) clearInterval(flush);
    };
  }, [id]);

  const shown = useMemo(() => {
    const q = query.toLowerCase();
    return q ? lines.filter((l) => l.line.toLowerCase().includes(q)) : lines;
  }, [lines, query]);

  useEffect(() => {
    const el = box.current;
    if (el && !paused) el.scrollTop = el.scrollHeight;
  }, [shown, paused]);

  return (
    <div className="stack">
      <div className="row wrap">
        <label className="grow">
          <span className="sr-only">Search logs</span>
          <input type="search" placeholder="Search the log" value={query} onChange={(e) => setQuery(e.target.value)} />
        </label>
        <button type="button" className="secondary small" aria-pressed={paused} onClick={() => setPaused((p) => !p)}>
          {paused ? `Resume${pending.current.length ? ` (${pending.current.length} new)` : ""}` : "Pause"}
        </button>
        <button type="button" className="secondary small" onClick={() => setLines([])}>
          Clear
        </button>
        <span className="muted small" aria-live="polite">
          {state === "following" ? (paused ? "paused" : "following") : state}
          {query && ` · ${shown.length} of ${lines.length} lines`}
        </span>
      </div>
      {error && <ErrorBox error={error} />}
      <div className="logview" ref={box} tabIndex={0} aria-label="Log output" data-testid="logs">
        {shown.length === 0 ? (
          <p className="muted">{query ? "No line matches." : "No output yet."}</p>
        ) : (
          shown.map((l, n) => (
            <div key={n} className={`logline ${l.stream}`}>
              <span className="logtime">{l.time ? new Date(l.time).toLocaleTimeString() : ""}</span> <Highlight text={l.line} query={query} />
            </div>
          ))
        )}
      </div>
    </div>
  );
}
