import { useEffect, useMemo, useState } from "react";
import { keepPreviousData, useQuery, useQueryClient } from "@tanstack/react-query";
import { api, withQuery } from "../api";
import { PageHeader } from "../components/Layout";
import { toast } from "../components/toast";
import { ActionButton, Confirm, EmptyState, ErrorBox, LinkButton, Loading, StatusBadge } from "../components/ui";
import { formatBytes, relativeTime } from "../lib/format";
import {
  PAGE_SIZES,
  currentCursor,
  eligible,
  firstPage,
  instanceQuery,
  labelError,
  nextPage,
  pageNumber,
  prevPage,
  runAction,
  sortState,
  toggleSort,
  type BulkAction,
} from "../lib/instances";
import { itemsOf } from "../lib/list";
import { Link, useDebounced, useSearchParams, useTitle } from "../router";
import { useSession } from "../session";
import { INSTANCE_STATUSES, type Image, type Instance, type Page } from "../types";

export function InstancesPage() {
  useTitle("Instances");
  const s = useSession();
  const qc = useQueryClient();
  const project = s.project?.name;
  const [params, setParams] = useSearchParams();
  const filters = {
    status: params.get("status") ?? "",
    label: params.get("label") ?? "",
    q: params.get("q") ?? "",
    image: params.get("image") ?? "",
    sort: params.get("sort") ?? "-created_at",
    limit: Number(params.get("limit")) || 50,
  };
  const [qInput, setQInput] = useState(filters.q);
  const [labelInput, setLabelInput] = useState(filters.label);
  const dq = useDebounced(qInput, 250);
  const dl = useDebounced(labelInput, 400);
  useEffect(() => {
    if (dq !== filters.q) setParams({ q: dq });
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [dq]);
  useEffect(() => {
    if (!labelError(dl) && dl !== filters.label) setParams({ label: dl });
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [dl]);

  const [pager, setPager] = useState(firstPage);
  const filterKey = JSON.stringify([project, filters.status, filters.label, filters.q, filters.sort, filters.limit]);
  useEffect(() => {
    setPager(firstPage());
  }, [filterKey]);
  const cursor = currentCursor(pager);
  const query = instanceQuery(filters, project, cursor);
  const list = useQuery({
    queryKey: ["instances", "list", query],
    queryFn: () => api.get<Page<Instance>>(withQuery("/v1/instances", query)),
    placeholderData: keepPreviousData,
    enabled: Boolean(project),
  });
  const images = useQuery({
    queryKey: ["images", project],
    queryFn: () => api.all<Image>("/v1/images", { project }),
  });

  const rows = useMemo(
    () => (list.data?.items ?? []).filter((i) => !filters.image || i.image === filters.image),
    [list.data, filters.image],
  );
  const [selected, setSelected] = useState<Set<string>>(new Set());
  useEffect(() => {
    setSelected(new Set());
  }, [filterKey, cursor]);
  // A block body: scrollTo returns a Promise in newer Chromium, and an effect's return
  // value is called as its cleanup (roost/effect-returns-nothing catches the class).
  useEffect(() => {
    window.scrollTo(0, 0);
  }, [cursor]);
  const chosen = rows.filter((r) => selected.has(r.id));
  const [bulk, setBulk] = useState<BulkAction | null>(null);

  async function doBulk(action: BulkAction) {
    const targets = eligible(action, chosen);
    // A few at a time: the server does each in a transaction with its network changes.
    const results: PromiseSettledResult<unknown>[] = [];
    const queue = [...targets];
    await Promise.all(
      Array.from({ length: Math.min(6, queue.length) }, async () => {
        for (let i = queue.shift(); i; i = queue.shift()) {
          results.push(await runAction(i, action).then((value) => ({ status: "fulfilled" as const, value }), (reason) => ({ status: "rejected" as const, reason })));
        }
      }),
    );
    const failed = results.filter((r) => r.status === "rejected") as PromiseRejectedResult[];
    if (failed.length) toast.error(failed[0]?.reason, `${failed.length} of ${targets.length} failed`);
    const ok = targets.length - failed.length;
    if (ok) toast.success(`${action === "delete" ? "Deleting" : action === "stop" ? "Stopping" : "Starting"} ${ok} instance${ok === 1 ? "" : "s"}`);
    setSelected(new Set());
    void qc.invalidateQueries({ queryKey: ["instances"] });
  }

  const sortHeader = (field: string, label: string) => (
    <th aria-sort={sortState(filters.sort, field)} scope="col">
      <button type="button" className="th-sort" onClick={() => setParams({ sort: toggleSort(filters.sort, field) })}>
        {label}
        <span aria-hidden="true">
          {sortState(filters.sort, field) === "ascending" ? " ▲" : sortState(filters.sort, field) === "descending" ? " ▼" : ""}
        </span>
      </button>
    </th>
  );

  const anyFilter = filters.status || filters.label || filters.q || filters.image;
  const lErr = labelError(labelInput);
  return (
    <>
      <PageHeader
        crumbs={[{ label: "Instances" }]}
        title="Instances"
        actions={
          <LinkButton to="/instances/new" reason={s.readOnly}>
            Launch instance
          </LinkButton>
        }
      />
      <div className="filters" role="search">
        <label>
          Search
          <input type="search" placeholder="name or glob (web*)" value={qInput} onChange={(e) => setQInput(e.target.value)} />
        </label>
        <label>
          Status
          <select value={filters.status} onChange={(e) => setParams({ status: e.target.value })}>
            <option value="">any</option>
            {INSTANCE_STATUSES.map((st) => (
              <option key={st}>{st}</option>
            ))}
          </select>
        </label>
        <label title="The API has no image filter: this narrows the rows of the current page">
          Image
          <select value={filters.image} onChange={(e) => setParams({ image: e.target.value })}>
            <option value="">any</option>
            {itemsOf(images.data).map((i) => (
              <option key={i.id}>{i.name}</option>
            ))}
          </select>
        </label>
        <label>
          Label
          <input
            placeholder="key=value"
            value={labelInput}
            aria-invalid={Boolean(lErr)}
            aria-describedby={lErr ? "label-err" : undefined}
            onChange={(e) => setLabelInput(e.target.value)}
          />
          {lErr && (
            <span id="label-err" className="field-error">
              {lErr}
            </span>
          )}
        </label>
      </div>
      {rows.length > 0 && (
      <div className="row wrap bulkbar" role="group" aria-label="Bulk actions">
        <span className="muted">{chosen.length} selected</span>
        {(["start", "stop", "delete"] as BulkAction[]).map((a) => (
          <ActionButton
            key={a}
            className={a === "delete" ? "danger small" : "secondary small"}
            reason={s.readOnly ?? (eligible(a, chosen).length === 0 ? `Select instances that can ${a}` : null)}
            onClick={() => setBulk(a)}
          >
            {a[0]?.toUpperCase() + a.slice(1)}
            {eligible(a, chosen).length ? ` (${eligible(a, chosen).length})` : ""}
          </ActionButton>
        ))}
      </div>
      )}
      {list.isPending && project ? (
        <Loading />
      ) : list.error ? (
        <ErrorBox error={list.error} retry={() => void list.refetch()} />
      ) : rows.length === 0 && pageNumber(pager) === 1 ? (
        anyFilter ? (
          <EmptyState title="No instances match">
            <p>
              Change the filters or{" "}
              <button type="button" className="linklike" onClick={() => { setQInput(""); setLabelInput(""); setParams({ status: "", label: "", q: "", image: "" }); }}>
                clear them
              </button>
              .
            </p>
          </EmptyState>
        ) : (
          <EmptyState title="No instances yet">
            <p>Instances are containers running an image. {s.readOnly ? "An operator of this project can launch one." : <Link to="/instances/new">Launch your first instance</Link>}</p>
          </EmptyState>
        )
      ) : (
        <div className="tablewrap">
          <table className="table" aria-busy={list.isFetching}>
            <thead>
              <tr>
                <th scope="col" className="check">
                  <input
                    type="checkbox"
                    aria-label="Select all on this page"
                    checked={rows.length > 0 && chosen.length === rows.length}
                    onChange={(e) => setSelected(e.target.checked ? new Set(rows.map((r) => r.id)) : new Set())}
                  />
                </th>
                {sortHeader("name", "Name")}
                <th scope="col">Status</th>
                <th scope="col" className="hide-sm">Type</th>
                <th scope="col">Image</th>
                <th scope="col" className="hide-sm">Size</th>
                <th scope="col" className="hide-sm">IP</th>
                <th scope="col" className="hide-sm">Labels</th>
                {sortHeader("created_at", "Created")}
              </tr>
            </thead>
            <tbody>
              {rows.map((i) => (
                <tr key={i.id} data-instance={i.name}>
                  <td className="check">
                    <input
                      type="checkbox"
                      aria-label={`Select ${i.name}`}
                      checked={selected.has(i.id)}
                      onChange={(e) => {
                        const next = new Set(selected);
                        if (e.target.checked) next.add(i.id);
                        else next.delete(i.id);
                        setSelected(next);
                      }}
                    />
                  </td>
                  <td>
                    <Link to={`/instances/${encodeURIComponent(i.name)}`}>{i.name}</Link>
                  </td>
                  <td>
                    <StatusBadge status={i.status} />
                  </td>
                  <td className="hide-sm">{i.type}</td>
                  <td>{i.image}</td>
                  <td className="hide-sm">
                    {i.cpus} vCPU · {formatBytes(i.memory_bytes)}
                  </td>
                  <td className="hide-sm">{i.ip ?? "—"}</td>
                  <td className="hide-sm">
                    {Object.entries(i.labels ?? {}).map(([k, v]) => (
                      <button key={k} type="button" className="chip" onClick={() => { setLabelInput(`${k}=${v}`); setParams({ label: `${k}=${v}` }); }}>
                        {k}={v}
                      </button>
                    ))}
                  </td>
                  <td title={i.created_at}>{relativeTime(i.created_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
      {(rows.length > 0 || pageNumber(pager) > 1) && (
      <div className="row between pager">
        <label className="row">
          Per page
          <select value={filters.limit} onChange={(e) => setParams({ limit: e.target.value })}>
            {PAGE_SIZES.map((n) => (
              <option key={n}>{n}</option>
            ))}
          </select>
        </label>
        <div className="row">
          <button type="button" className="secondary small" disabled={pageNumber(pager) === 1} onClick={() => setPager(prevPage)}>
            ← Previous
          </button>
          <span aria-live="polite">Page {pageNumber(pager)}</span>
          <button
            type="button"
            className="secondary small"
            disabled={!list.data?.next_cursor}
            onClick={() => list.data?.next_cursor && setPager((p) => nextPage(p, list.data!.next_cursor!))}
          >
            Next →
          </button>
        </div>
      </div>
      )}
      {bulk && (
        <Confirm
          title={`${bulk[0]?.toUpperCase()}${bulk.slice(1)} ${eligible(bulk, chosen).length} instance(s)?`}
          body={
            <>
              <p>{eligible(bulk, chosen).map((i) => i.name).join(", ")}</p>
              {bulk === "delete" && <p className="error-text">Deleting removes the instances and their disks. Running ones are stopped first.</p>}
            </>
          }
          action={bulk === "delete" ? "Delete" : bulk === "stop" ? "Stop" : "Start"}
          danger={bulk !== "start"}
          onConfirm={() => doBulk(bulk)}
          onClose={() => setBulk(null)}
        />
      )}
    </>
  );
}
