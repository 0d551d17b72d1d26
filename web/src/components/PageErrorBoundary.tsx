// One page's failure stays inside that page: an error panel in the layout instead of a
// blank console (React unmounts the whole tree on an uncaught render error). The
// navigation around it keeps working, and leaving the page resets the boundary (App
// keys it by path).
import { Component, type ReactNode } from "react";
import { ApiError } from "../api";
import { CopyButton } from "./ui";

/** What a failure was, in words for the panel. */
export function describeFailure(error: unknown): { title: string; detail: string; requestId?: string; reload: boolean } {
  if (error instanceof ApiError) {
    return {
      title: "The API refused a request this page needs",
      detail: `${error.message}${error.status ? ` (HTTP ${error.status}, ${error.code})` : ""}`,
      requestId: error.requestId,
      reload: false,
    };
  }
  const message = error instanceof Error ? error.message : String(error);
  // A page's code is loaded on demand; after an upgrade the old file names are gone.
  if (/dynamically imported module|Importing a module script failed|Failed to fetch/i.test(message)) {
    return {
      title: "The console could not load this page's code",
      detail: `${message}. The server may have been upgraded: reload the page.`,
      reload: true,
    };
  }
  return {
    title: "This page failed",
    detail: error instanceof Error ? `${error.name}: ${message}` : message,
    reload: false,
  };
}

export function PageError({ error, path, retry }: { error: unknown; path: string; retry: () => void }) {
  const f = describeFailure(error);
  const stack = error instanceof Error && error.stack ? error.stack : String(error);
  const report = [`page: ${path}`, f.requestId ? `request id: ${f.requestId}` : null, stack].filter(Boolean).join("\n");
  return (
    <section className="page-error" role="alert" aria-labelledby="page-error-title" data-testid="page-error">
      <h1 id="page-error-title">{f.title}</h1>
      <p className="page-error-detail">{f.detail}</p>
      {f.requestId && (
        <p>
          Request id: <code data-testid="request-id">{f.requestId}</code> <CopyButton text={f.requestId} label="Copy request id" />
          <span className="muted"> (the server's log has the same id)</span>
        </p>
      )}
      <div className="row wrap">
        <button type="button" onClick={retry}>
          Try again
        </button>
        <button type="button" className="secondary" onClick={() => window.location.reload()}>
          Reload page
        </button>
      </div>
      <p className="muted">The rest of the console still works: pick another page on the left.</p>
      <details>
        <summary>Details for a bug report</summary>
        <pre data-testid="page-error-stack">{report}</pre>
        <CopyButton text={report} label="Copy details" />
      </details>
    </section>
  );
}

interface Props {
  path: string;
  /** Called when the failed page is tried again or left: drops what it had cached (an
   * answer it could not render would fail it again). */
  onLeaveFailure?: () => void;
  children: ReactNode;
}

export class PageErrorBoundary extends Component<Props, { error: unknown; failed: boolean }> {
  state = { error: undefined as unknown, failed: false };

  // React itself reports the error (and the component stack) in the browser console.
  static getDerivedStateFromError(error: unknown) {
    return { error, failed: true };
  }

  componentWillUnmount() {
    if (this.state.failed) this.props.onLeaveFailure?.();
  }

  render() {
    if (this.state.failed) {
      const retry = () => {
        this.props.onLeaveFailure?.();
        this.setState({ error: undefined, failed: false });
      };
      return <PageError error={this.state.error} path={this.props.path} retry={retry} />;
    }
    return this.props.children;
  }
}
