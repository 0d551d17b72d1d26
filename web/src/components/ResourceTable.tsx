// The pattern every resource page uses: a table of rows with columns, and an empty state
// that says what to do next. New resources (networks, buckets, ...) reuse it.
import type { ReactNode } from "react";
import { EmptyState, ErrorBox, Loading } from "./ui";

export interface Column<T> {
  label: string;
  render: (row: T) => ReactNode;
  className?: string;
}

export function ResourceTable<T>({
  rows,
  columns,
  rowKey,
  loading,
  error,
  retry,
  empty,
  label,
}: {
  rows: T[] | undefined;
  columns: Column<T>[];
  rowKey: (row: T) => string;
  loading?: boolean;
  error?: unknown;
  retry?: () => void;
  empty: { title: string; body: ReactNode };
  label: string;
}) {
  if (loading) return <Loading />;
  if (error) return <ErrorBox error={error} retry={retry} />;
  if (!rows || rows.length === 0) {
    return (
      <EmptyState title={empty.title}>
        <div>{empty.body}</div>
      </EmptyState>
    );
  }
  return (
    <div className="tablewrap">
      <table className="table" aria-label={label}>
        <thead>
          <tr>
            {columns.map((c) => (
              <th key={c.label} scope="col" className={c.className}>
                {c.label}
              </th>
            ))}
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={rowKey(r)}>
              {columns.map((c) => (
                <td key={c.label} className={c.className}>
                  {c.render(r)}
                </td>
              ))}
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

/** A secret shown once after a create, with a copy button. */
export function SecretOnce({ title, secret, note, onClose }: { title: string; secret: string; note: string; onClose: () => void }) {
  return (
    <div className="secret-once" role="alert">
      <h3>{title}</h3>
      <p>{note}</p>
      <div className="copyfield">
        <code data-testid="secret">{secret}</code>
        <button type="button" className="small" onClick={() => void navigator.clipboard.writeText(secret)}>
          Copy
        </button>
      </div>
      <button type="button" className="secondary small" onClick={onClose}>
        I have stored it
      </button>
    </div>
  );
}
