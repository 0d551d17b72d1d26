// Small shared pieces: modal, confirmation, status badge, empty state, copy button.
import { useEffect, useRef, useState, type ButtonHTMLAttributes, type ReactNode } from "react";
import { ApiError } from "../api";
import { Link } from "../router";
import { toast } from "./toast";

/** The time now (ms), ticking every second: for countdowns. */
export function useNow(): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = window.setInterval(() => setNow(Date.now()), 1000);
    return () => window.clearInterval(t);
  }, []);
  return now;
}

export function Modal({
  title,
  onClose,
  children,
  wide,
}: {
  title: string;
  onClose: () => void;
  children: ReactNode;
  wide?: boolean;
}) {
  const ref = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const previous = document.activeElement as HTMLElement | null;
    const el = ref.current;
    const first = el?.querySelector<HTMLElement>("[autofocus], input, select, textarea, button:not(.modal-close)");
    first?.focus();
    const onKey = (e: KeyboardEvent) => {
      if (e.key === "Escape") {
        e.stopPropagation();
        onClose();
      } else if (e.key === "Tab" && el) {
        // Keep focus inside the dialog.
        const f = [...el.querySelectorAll<HTMLElement>("a[href], button, input, select, textarea, [tabindex]")].filter(
          (n) => !n.hasAttribute("disabled") && n.tabIndex >= 0,
        );
        if (f.length === 0) return;
        const a = f[0] as HTMLElement;
        const z = f[f.length - 1] as HTMLElement;
        if (e.shiftKey && document.activeElement === a) {
          e.preventDefault();
          z.focus();
        } else if (!e.shiftKey && document.activeElement === z) {
          e.preventDefault();
          a.focus();
        }
      }
    };
    document.addEventListener("keydown", onKey);
    return () => {
      document.removeEventListener("keydown", onKey);
      previous?.focus?.();
    };
  }, [onClose]);
  return (
    <div className="modal-backdrop" onMouseDown={(e) => e.target === e.currentTarget && onClose()}>
      <div className={`modal${wide ? " wide" : ""}`} role="dialog" aria-modal="true" aria-label={title} ref={ref}>
        <div className="modal-head">
          <h2>{title}</h2>
          <button type="button" className="ghost small modal-close" aria-label="Close" onClick={onClose}>
            ×
          </button>
        </div>
        {children}
      </div>
    </div>
  );
}

/** A confirmation; with `typed`, the user must type that text to enable the action. */
export function Confirm({
  title,
  body,
  action,
  danger,
  typed,
  onConfirm,
  onClose,
}: {
  title: string;
  body: ReactNode;
  action: string;
  danger?: boolean;
  typed?: string;
  onConfirm: () => Promise<unknown> | void;
  onClose: () => void;
}) {
  const [text, setText] = useState("");
  const [busy, setBusy] = useState(false);
  const ok = !typed || text === typed;
  async function go() {
    setBusy(true);
    try {
      await onConfirm();
      onClose();
    } catch (e) {
      toast.error(e);
      setBusy(false);
    }
  }
  return (
    <Modal title={title} onClose={onClose}>
      <form
        className="stack"
        onSubmit={(e) => {
          e.preventDefault();
          if (ok && !busy) void go();
        }}
      >
        <div>{body}</div>
        {typed && (
          <label>
            Type <code>{typed}</code> to confirm
            <input autoFocus value={text} onChange={(e) => setText(e.target.value)} aria-label={`Type ${typed} to confirm`} />
          </label>
        )}
        <div className="row end">
          <button type="button" className="secondary" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className={danger ? "danger" : undefined} disabled={!ok || busy} autoFocus={!typed}>
            {busy ? "Working…" : action}
          </button>
        </div>
      </form>
    </Modal>
  );
}

/** A button that, when disabled for a reason, says why (tooltip and screen readers). */
export function ActionButton({
  reason,
  children,
  ...rest
}: { reason?: string | null } & ButtonHTMLAttributes<HTMLButtonElement>) {
  return (
    <button
      type="button"
      {...rest}
      disabled={Boolean(reason) || rest.disabled}
      title={reason ?? rest.title}
      data-reason={reason ?? undefined}
    >
      {children}
    </button>
  );
}

export function StatusBadge({ status }: { status: string }) {
  return (
    <span className={`status status-${status}`} data-status={status}>
      <span className="dot" aria-hidden="true" />
      {status}
    </span>
  );
}

export function EmptyState({ title, children }: { title: string; children?: ReactNode }) {
  return (
    <div className="empty">
      <h3>{title}</h3>
      {children}
    </div>
  );
}

export function CopyButton({ text, label = "Copy" }: { text: string; label?: string }) {
  const [done, setDone] = useState(false);
  async function copy() {
    try {
      await navigator.clipboard.writeText(text);
      setDone(true);
      setTimeout(() => setDone(false), 1500);
    } catch {
      toast.error("The browser refused clipboard access; select the text and copy it.");
    }
  }
  return (
    <button type="button" className="secondary small" onClick={() => void copy()} aria-label={`${label}: ${text.slice(0, 40)}`}>
      {done ? "Copied" : label}
    </button>
  );
}

/** A one-line value with a copy button (commands, ids, secrets). */
export function CopyField({ value, label }: { value: string; label?: string }) {
  return (
    <div className="copyfield">
      <code>{value}</code>
      <CopyButton text={value} label={label} />
    </div>
  );
}

export function Loading({ what = "Loading" }: { what?: string }) {
  return (
    <p className="muted" aria-busy="true">
      {what}…
    </p>
  );
}

export function ErrorBox({ error, retry }: { error: unknown; retry?: () => void }) {
  return (
    <div className="errorbox" role="alert">
      <p>
        {error instanceof Error ? error.message : String(error)}
        {error instanceof ApiError && error.requestId && (
          <span className="muted request-id">
            {" "}
            (request id <code>{error.requestId}</code>)
          </span>
        )}
      </p>
      {retry && (
        <button type="button" className="secondary small" onClick={retry}>
          Retry
        </button>
      )}
    </div>
  );
}

/** A link styled as a button; disabled (with the reason) when `reason` is set. */
export function LinkButton({ to, reason, children, className }: { to: string; reason?: string | null; children: ReactNode; className?: string }) {
  if (reason) {
    return (
      <button type="button" className={className} disabled title={reason} data-reason={reason}>
        {children}
      </button>
    );
  }
  return (
    <Link className={`button${className ? ` ${className}` : ""}`} to={to}>
      {children}
    </Link>
  );
}

/** The first line of `text` (at most `max` characters), and the rest behind a toggle:
 * a whole build log as an error message must not make a table row hundreds of pixels tall. */
export function LongText({ text, max = 140, label = "message" }: { text: string; max?: number; label?: string }) {
  const [open, setOpen] = useState(false);
  const firstLine = text.split("\n", 1)[0] ?? "";
  const short = firstLine.length > max ? `${firstLine.slice(0, max).trimEnd()}…` : firstLine;
  if (short === text) return <span className="longtext">{text}</span>;
  return (
    <div className="longtext">
      {open ? <pre className="longtext-full">{text}</pre> : <span>{short}</span>}{" "}
      <button type="button" className="linklike small" aria-expanded={open} onClick={() => setOpen((o) => !o)}>
        {open ? "Show less" : `Show the whole ${label}`}
      </button>
    </div>
  );
}
