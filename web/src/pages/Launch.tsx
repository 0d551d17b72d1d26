import { useState, type ReactNode } from "react";
import { useQuery, useQueryClient } from "@tanstack/react-query";
import { ApiError, api, withQuery } from "../api";
import { PageHeader } from "../components/Layout";
import { toast } from "../components/toast";
import { EmptyState, ErrorBox, Loading } from "../components/ui";
import { errorMessage, formatBytes } from "../lib/format";
import { itemsOf } from "../lib/list";
import {
  PRESETS,
  STEPS,
  STEP_LABELS,
  initialState,
  quotaUse,
  size,
  toRequest,
  validateStep,
  type Errors,
  type KV,
  type Step,
  type WizardState,
} from "../lib/wizard";
import { navigate } from "../nav";
import { Link, useTitle } from "../router";
import { useSession } from "../session";
import type { Image, Instance, Network, Operation, Page, SecurityGroup, Usage, Volume } from "../types";

function FieldError({ id, errors }: { id: string; errors: Errors }) {
  const msg = errors[id];
  return msg ? (
    <span className="field-error" id={`err-${id}`} role="alert">
      {msg}
    </span>
  ) : null;
}

function KVEditor({ label, rows, onChange, prefix, errors }: { label: string; rows: KV[]; onChange: (r: KV[]) => void; prefix: string; errors: Errors }) {
  return (
    <fieldset>
      <legend>{label}</legend>
      {rows.map((r, n) => (
        <div className="row kv" key={n}>
          <input aria-label={`${label} ${n + 1} name`} placeholder="NAME" value={r.key} onChange={(e) => onChange(rows.map((x, i) => (i === n ? { ...x, key: e.target.value } : x)))} />
          <input aria-label={`${label} ${n + 1} value`} placeholder="value" value={r.value} onChange={(e) => onChange(rows.map((x, i) => (i === n ? { ...x, value: e.target.value } : x)))} />
          <button type="button" className="ghost small" aria-label={`Remove ${label} ${n + 1}`} onClick={() => onChange(rows.filter((_, i) => i !== n))}>
            ×
          </button>
          <FieldError id={`${prefix}.${n}`} errors={errors} />
        </div>
      ))}
      <button type="button" className="secondary small" onClick={() => onChange([...rows, { key: "", value: "" }])}>
        Add {label.toLowerCase().replace(/s$/, "")}
      </button>
    </fieldset>
  );
}

export function LaunchWizard() {
  useTitle("Launch instance");
  const s = useSession();
  const qc = useQueryClient();
  const project = s.project?.name;
  const [state, setState] = useState<WizardState>(initialState);
  const [step, setStep] = useState<Step>("image");
  const [errors, setErrors] = useState<Errors>({});
  const [busy, setBusy] = useState(false);
  const images = useQuery({ queryKey: ["images", project], queryFn: () => api.all<Image>("/v1/images", { project }) });
  const usage = useQuery({
    queryKey: ["dashboard", "usage", project],
    queryFn: () => api.get<Usage>(`/v1/projects/${encodeURIComponent(project!)}/usage`),
    enabled: Boolean(project),
  });
  const volumes = useQuery({
    queryKey: ["volumes", project],
    queryFn: () => api.get<Page<Volume>>(withQuery("/v1/volumes", { project })),
  });
  const networks = useQuery({
    queryKey: ["networks", project],
    queryFn: () => api.get<Page<Network>>(withQuery("/v1/networks", { project, limit: 1000 })),
    enabled: Boolean(project),
  });
  const groups = useQuery({
    queryKey: ["security-groups", project],
    queryFn: () => api.get<Page<SecurityGroup>>(withQuery("/v1/security-groups", { project, limit: 1000 })),
    enabled: Boolean(project),
  });
  const netList = networks.data?.items ?? [];
  const groupList = groups.data?.items ?? [];
  const ctx = {
    images: itemsOf(images.data),
    usage: usage.data,
    networks: networks.data ? netList.map((n) => n.name) : undefined,
    securityGroups: groups.data ? groupList.map((g) => g.name) : undefined,
  };
  // What the API picks when the wizard sends nothing: the project's default ones.
  const chosenNets = state.networks ?? netList.filter((n) => n.default).map((n) => n.name);
  const chosenGroups = state.security_groups ?? groupList.filter((g) => g.default).map((g) => g.name);
  const set = (patch: Partial<WizardState>) => setState((st) => ({ ...st, ...patch }));
  const idx = STEPS.indexOf(step);

  if (s.readOnly) {
    return (
      <EmptyState title="Read only">
        <p>{s.readOnly}. An operator or administrator of the project can launch instances.</p>
      </EmptyState>
    );
  }

  async function next() {
    const e = validateStep(step, state, ctx);
    if (step === "config" && !e.name) {
      // Names are unique per project: ask the API whether this one is taken.
      try {
        await api.get(withQuery(`/v1/instances/${encodeURIComponent(state.name)}`, { project }));
        e.name = `An instance named '${state.name}' exists in ${project}`;
      } catch (err) {
        if (!(err instanceof ApiError && err.status === 404)) e.name = errorMessage(err);
      }
    }
    setErrors(e);
    if (Object.keys(e).length === 0) setStep(STEPS[idx + 1] ?? step);
  }

  async function launch() {
    const e = validateStep("review", state, ctx);
    setErrors(e);
    if (Object.keys(e).length) return;
    setBusy(true);
    try {
      const res = await api.post<{ instance: Instance; operation: Operation }>("/v1/instances", toRequest(state, project));
      toast.success(`Launching ${res.instance.name}`);
      void qc.invalidateQueries({ queryKey: ["instances"] });
      void qc.invalidateQueries({ queryKey: ["dashboard"] });
      navigate(`/instances/${encodeURIComponent(res.instance.name)}`);
    } catch (err) {
      toast.error(err, "Launch failed");
      setBusy(false);
    }
  }

  let body: ReactNode;
  switch (step) {
    case "image":
      body = images.isPending ? (
        <Loading />
      ) : images.error ? (
        <ErrorBox error={images.error} />
      ) : (
        <fieldset>
          <legend>Image</legend>
          <div className="choices" role="radiogroup" aria-label="Instance type">
            <label className={`choice${state.type === "container" ? " chosen" : ""}`}>
              <input type="radio" name="type" checked={state.type === "container"} onChange={() => set({ type: "container" })} />
              <strong>Container</strong>
              <span className="muted small">runc; starts in milliseconds</span>
            </label>
            <label className={`choice${state.type === "vm" ? " chosen" : ""}`}>
              <input type="radio" name="type" checked={state.type === "vm"} onChange={() => set({ type: "vm" })} />
              <strong>MicroVM</strong>
              <span className="muted small">QEMU, its own kernel; a Debian image</span>
            </label>
          </div>
          <div className="choices">
            {ctx.images.map((i) => (
              <label key={i.id} className={`choice${state.image === i.name ? " chosen" : ""}`}>
                <input type="radio" name="image" value={i.name} checked={state.image === i.name} disabled={i.status !== "ready"} onChange={() => set({ image: i.name })} />
                <strong>{i.name}</strong>
                <span className="muted small">
                  {i.source} · {i.status}
                  {i.size_bytes ? ` · ${formatBytes(i.size_bytes)}` : ""}
                </span>
              </label>
            ))}
          </div>
          <FieldError id="image" errors={errors} />
          <p className="muted small">
            Need another? <Link to="/images">Build or import an image</Link>.
          </p>
        </fieldset>
      );
      break;
    case "size":
      body = (
        <fieldset>
          <legend>Size</legend>
          <div className="choices">
            {PRESETS.map((p) => (
              <label key={p.id} className={`choice${state.preset === p.id ? " chosen" : ""}`}>
                <input type="radio" name="preset" checked={state.preset === p.id} onChange={() => set({ preset: p.id, cpus: String(p.cpus), memory: `${p.memory_bytes / 1048576}M` })} />
                <strong>{p.label}</strong>
                <span className="muted small">
                  {p.cpus} vCPU · {formatBytes(p.memory_bytes)}
                </span>
              </label>
            ))}
            <label className={`choice${state.preset === "custom" ? " chosen" : ""}`}>
              <input type="radio" name="preset" checked={state.preset === "custom"} onChange={() => set({ preset: "custom" })} />
              <strong>custom</strong>
              <span className="muted small">your own CPUs and memory</span>
            </label>
          </div>
          {state.preset === "custom" && (
            <div className="row wrap">
              <label>
                CPUs
                <input inputMode="decimal" value={state.cpus} aria-invalid={Boolean(errors.cpus)} onChange={(e) => set({ cpus: e.target.value })} />
                <FieldError id="cpus" errors={errors} />
              </label>
              <label>
                Memory
                <input value={state.memory} placeholder="512M, 2G" aria-invalid={Boolean(errors.memory)} onChange={(e) => set({ memory: e.target.value })} />
                <FieldError id="memory" errors={errors} />
              </label>
            </div>
          )}
          <QuotaTable state={state} usage={usage.data} />
          <FieldError id="quota" errors={errors} />
        </fieldset>
      );
      break;
    case "network":
      body = (
        <div className="stack">
          <fieldset aria-describedby="net-help">
            <legend>Networks</legend>
            <p id="net-help" className="muted small">
              One NIC per network, in the order you tick them (the first is eth0). <Link to="/networks">Manage networks</Link>
            </p>
            {networks.isPending ? (
              <Loading />
            ) : networks.error ? (
              <ErrorBox error={networks.error} />
            ) : (
              netList.map((n) => {
                const at = chosenNets.indexOf(n.name);
                return (
                  <label key={n.id} className="row">
                    <input
                      type="checkbox"
                      checked={at >= 0}
                      onChange={(e) =>
                        set({ networks: e.target.checked ? [...chosenNets, n.name] : chosenNets.filter((x) => x !== n.name) })
                      }
                    />
                    <span>
                      <strong>{n.name}</strong> <code>{n.cidr}</code>
                      <span className="muted small">
                        {" "}
                        {n.addresses_used}/{n.addresses_total} addresses{n.nat ? " · NAT" : ""}
                        {at >= 0 ? ` · eth${at}` : ""}
                      </span>
                    </span>
                  </label>
                );
              })
            )}
            <FieldError id="networks" errors={errors} />
          </fieldset>
          <fieldset>
            <legend>Security groups</legend>
            <p className="muted small">
              Stateful firewall rules; traffic no rule allows is dropped. <Link to="/security-groups">Manage groups</Link>
            </p>
            {groupList.map((g) => (
              <label key={g.id} className="row">
                <input
                  type="checkbox"
                  checked={chosenGroups.includes(g.name)}
                  onChange={(e) =>
                    set({ security_groups: e.target.checked ? [...chosenGroups, g.name] : chosenGroups.filter((x) => x !== g.name) })
                  }
                />
                <span>
                  <strong>{g.name}</strong> <span className="muted small">{g.rules.length} rules{g.description ? ` · ${g.description}` : ""}</span>
                </span>
              </label>
            ))}
            <FieldError id="security_groups" errors={errors} />
          </fieldset>
          <fieldset>
            <legend>Volumes</legend>
            <p className="muted small">
              Free volumes of the project, mounted at a path. <Link to="/volumes">Manage volumes</Link>
            </p>
            {(volumes.data?.items ?? [])
              .filter((v) => !v.instance_id)
              .map((v) => {
                const chosen = state.volumes.find((x) => x.volume === v.name);
                return (
                  <div key={v.id} className="row">
                    <label className="row">
                      <input
                        type="checkbox"
                        checked={Boolean(chosen)}
                        onChange={(e) =>
                          set({
                            volumes: e.target.checked
                              ? [...state.volumes, { volume: v.name, path: `/${v.name}` }]
                              : state.volumes.filter((x) => x.volume !== v.name),
                          })
                        }
                      />
                      <span>
                        <strong>{v.name}</strong> <span className="muted small">{formatBytes(v.size_bytes)}</span>
                      </span>
                    </label>
                    {chosen && (
                      <input
                        aria-label={`Path of ${v.name}`}
                        value={chosen.path}
                        onChange={(e) => set({ volumes: state.volumes.map((x) => (x.volume === v.name ? { ...x, path: e.target.value } : x)) })}
                      />
                    )}
                  </div>
                );
              })}
            {(volumes.data?.items ?? []).every((v) => v.instance_id) && <p className="muted small">No free volumes.</p>}
            <FieldError id="volumes" errors={errors} />
          </fieldset>
        </div>
      );
      break;
    case "config":
      body = (
        <div className="stack">
          <label>
            Name
            <input value={state.name} autoFocus placeholder="web-1" aria-invalid={Boolean(errors.name)} onChange={(e) => set({ name: e.target.value.toLowerCase() })} />
            <FieldError id="name" errors={errors} />
          </label>
          <label>
            Command <span className="muted small">(empty: the image's default)</span>
            <input value={state.command} placeholder={'sh -c "while true; do date; sleep 5; done"'} onChange={(e) => set({ command: e.target.value })} />
            <FieldError id="command" errors={errors} />
          </label>
          <KVEditor label="Environment" rows={state.env} prefix="env" errors={errors} onChange={(env) => set({ env })} />
          <KVEditor label="Labels" rows={state.labels} prefix="labels" errors={errors} onChange={(labels) => set({ labels })} />
          <label>
            Restart policy
            <select value={state.restart} onChange={(e) => set({ restart: e.target.value as WizardState["restart"] })}>
              <option value="never">never</option>
              <option value="on-failure">on-failure</option>
              <option value="always">always</option>
            </select>
          </label>
          <label>
            SSH keys (your key names, comma-separated; installed for root)
            <input value={state.ssh_keys} placeholder="mykey, laptop" onChange={(e) => set({ ssh_keys: e.target.value })} />
          </label>
          <label className="row">
            <input type="checkbox" checked={state.start} onChange={(e) => set({ start: e.target.checked })} /> Start it now
          </label>
        </div>
      );
      break;
    case "review": {
      const sz = size(state);
      const req = toRequest(state, project);
      body = (
        <div className="stack">
          <dl className="spec">
            <dt>Name</dt>
            <dd>{state.name}</dd>
            <dt>Project</dt>
            <dd>{project}</dd>
            <dt>Image</dt>
            <dd>{state.image}</dd>
            <dt>Size</dt>
            <dd>
              {sz.cpus} vCPU · {formatBytes(sz.memory_bytes)}
            </dd>
            <dt>Command</dt>
            <dd>{req.command ? <code>{JSON.stringify(req.command)}</code> : "image default"}</dd>
            <dt>Environment</dt>
            <dd>{Object.keys(req.env).join(", ") || "—"}</dd>
            <dt>Labels</dt>
            <dd>{Object.entries(req.labels).map(([k, v]) => `${k}=${v}`).join(", ") || "—"}</dd>
            <dt>Networks</dt>
            <dd>{chosenNets.join(", ") || "—"}</dd>
            <dt>Security groups</dt>
            <dd>{chosenGroups.join(", ") || "none"}</dd>
            <dt>Volumes</dt>
            <dd>{state.volumes.map((v) => `${v.volume}:${v.path}`).join(", ") || "—"}</dd>
            <dt>Restart</dt>
            <dd>{state.restart}</dd>
          </dl>
          <QuotaTable state={state} usage={usage.data} />
          {Object.values(errors).length > 0 && (
            <ul className="errorbox" role="alert">
              {Object.entries(errors).map(([k, v]) => (
                <li key={k}>{v}</li>
              ))}
            </ul>
          )}
        </div>
      );
      break;
    }
  }

  return (
    <>
      <PageHeader crumbs={[{ label: "Instances", to: "/instances" }, { label: "Launch" }]} title={`Launch an instance in ${project}`} />
      <ol className="steps" aria-label="Steps">
        {STEPS.map((st, n) => (
          <li key={st} aria-current={st === step ? "step" : undefined} className={n < idx ? "done" : undefined}>
            <button
              type="button"
              className="ghost small"
              disabled={n > idx}
              onClick={() => {
                setErrors({});
                setStep(st);
              }}
            >
              {n + 1}. {STEP_LABELS[st]}
            </button>
          </li>
        ))}
      </ol>
      <form
        className="panel wizard"
        onSubmit={(e) => {
          e.preventDefault();
          if (step === "review") void launch();
          else void next();
        }}
      >
        {body}
        <div className="row between">
          <button type="button" className="secondary" disabled={idx === 0} onClick={() => setStep(STEPS[idx - 1] ?? step)}>
            Back
          </button>
          {step === "review" ? (
            <button type="submit" disabled={busy}>
              {busy ? "Launching…" : "Launch"}
            </button>
          ) : (
            <button type="submit">Next</button>
          )}
        </div>
      </form>
    </>
  );
}

function QuotaTable({ state, usage }: { state: WizardState; usage?: Usage }) {
  const lines = quotaUse(state, usage);
  return (
    <table className="table compact" aria-label="Estimated quota use">
      <caption className="muted small">Estimated quota use after launch</caption>
      <thead>
        <tr>
          <th scope="col">Resource</th>
          <th scope="col">Now</th>
          <th scope="col">After</th>
          <th scope="col">Quota</th>
        </tr>
      </thead>
      <tbody>
        {lines.map((l) => (
          <tr key={l.label} className={l.over ? "over" : undefined}>
            <td>{l.label}</td>
            <td>{l.used}</td>
            <td>{l.after}</td>
            <td>{l.limit}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
