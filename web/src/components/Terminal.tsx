// A shell in an instance: xterm.js over the exec WebSocket (the protocol the CLI uses).
import { useEffect, useRef, useState } from "react";
import { Terminal as XTerm } from "@xterm/xterm";
import { FitAddon } from "@xterm/addon-fit";
import "@xterm/xterm/css/xterm.css";
import { toast } from "./toast";

const STDOUT = 1;
const STDERR = 2;

/** The exec WebSocket URL for an instance on this origin. */
export function execUrl(id: string, loc: Location = window.location): string {
  const proto = loc.protocol === "https:" ? "wss:" : "ws:";
  return `${proto}//${loc.host}/v1/instances/${encodeURIComponent(id)}/exec`;
}

export default function Terminal({ id }: { id: string }) {
  const host = useRef<HTMLDivElement>(null);
  const termRef = useRef<XTerm | null>(null);
  const [state, setState] = useState<"connecting" | "open" | "closed">("connecting");
  const [exit, setExit] = useState<string | null>(null);
  const [session, setSession] = useState(0);

  useEffect(() => {
    const dark = window.matchMedia?.("(prefers-color-scheme: dark)").matches;
    const term = new XTerm({
      cursorBlink: true,
      fontFamily: 'ui-monospace, SFMono-Regular, Menlo, monospace',
      fontSize: 14,
      theme: dark ? { background: "#0b0d11" } : { background: "#ffffff", foreground: "#1b1f24", cursor: "#1b1f24", selectionBackground: "#bfd3ff" },
    });
    termRef.current = term;
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open(host.current!);
    fit.fit();
    setState("connecting");
    setExit(null);

    const ws = new WebSocket(execUrl(id));
    ws.binaryType = "arraybuffer";
    const enc = new TextEncoder();
    const send = (data: string) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(enc.encode(data));
    };
    ws.onopen = () => {
      ws.send(JSON.stringify({ cmd: ["/bin/sh"], tty: true, rows: term.rows, cols: term.cols, env: { TERM: "xterm-256color" } }));
      setState("open");
      term.focus();
    };
    ws.onmessage = (m) => {
      if (typeof m.data === "string") {
        try {
          const c = JSON.parse(m.data) as { type: string; code?: number | string; message?: string };
          if (c.type === "exit") setExit(`exited with code ${c.code}`);
          else if (c.type === "error") {
            setExit(`error: ${c.message}`);
            toast.error(c.message ?? "exec failed");
          }
        } catch {
          // not a control frame
        }
        return;
      }
      const bytes = new Uint8Array(m.data as ArrayBuffer);
      if (bytes.length && (bytes[0] === STDOUT || bytes[0] === STDERR)) term.write(bytes.subarray(1));
    };
    ws.onclose = () => setState("closed");
    ws.onerror = () => setExit((e) => e ?? "the connection failed");

    const data = term.onData(send);
    const resize = term.onResize(({ rows, cols }) => {
      if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: "resize", rows, cols }));
    });
    // Ctrl+Shift+C / Ctrl+Shift+V copy and paste (Ctrl+C stays the interrupt).
    term.attachCustomKeyEventHandler((e) => {
      if (e.type !== "keydown" || !e.ctrlKey || !e.shiftKey) return true;
      if (e.code === "KeyC") {
        const sel = term.getSelection();
        if (sel) void navigator.clipboard?.writeText(sel);
        return false;
      }
      if (e.code === "KeyV") {
        void navigator.clipboard?.readText().then((t) => term.paste(t));
        return false;
      }
      return true;
    });
    const ro = new ResizeObserver(() => {
      try {
        fit.fit();
      } catch {
        // hidden
      }
    });
    ro.observe(host.current!);
    return () => {
      ro.disconnect();
      data.dispose();
      resize.dispose();
      ws.close();
      term.dispose();
      termRef.current = null;
    };
  }, [id, session]);

  async function copy() {
    const sel = termRef.current?.getSelection();
    if (!sel) {
      toast.info("Select text in the terminal first");
      return;
    }
    await navigator.clipboard.writeText(sel).then(() => toast.success("Copied"), () => toast.error("Clipboard access refused"));
  }
  async function paste() {
    try {
      const text = await navigator.clipboard.readText();
      termRef.current?.paste(text);
      termRef.current?.focus();
    } catch {
      toast.error("Clipboard access refused: use Ctrl+Shift+V in the terminal");
    }
  }

  return (
    <div className="stack">
      <div className="row wrap">
        <span className="muted small" aria-live="polite" data-testid="terminal-state">
          {state === "open" ? "connected" : state}
          {exit ? ` · ${exit}` : ""}
        </span>
        <button type="button" className="secondary small" onClick={() => void copy()}>
          Copy selection
        </button>
        <button type="button" className="secondary small" onClick={() => void paste()}>
          Paste
        </button>
        {state === "closed" && (
          <button type="button" className="small" onClick={() => setSession((n) => n + 1)}>
            Reconnect
          </button>
        )}
        <span className="muted small hide-sm">Ctrl+Shift+C / Ctrl+Shift+V copy and paste</span>
      </div>
      <div className="terminal" ref={host} data-testid="terminal" />
    </div>
  );
}
