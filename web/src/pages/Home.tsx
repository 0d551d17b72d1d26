import { useState } from "react";
import { logout, type Whoami } from "../api";

export function Home({ who, onSignedOut }: { who: Whoami; onSignedOut: () => void }) {
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  async function signOut() {
    setBusy(true);
    setError(null);
    try {
      await logout();
      onSignedOut();
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
      setBusy(false);
    }
  }

  return (
    <>
      <header className="topbar">
        <h1>Roost</h1>
        <div className="who">
          <span>
            Signed in as <strong>{who.user.name}</strong> <span className="badge">{who.user.role}</span>
          </span>
          <button type="button" onClick={() => void signOut()} disabled={busy}>
            Log out
          </button>
        </div>
      </header>
      <main className="content">
        {error && (
          <p className="error" role="alert">
            {error}
          </p>
        )}
        <p>
          The console is being built; use the <code>roost</code> CLI or the REST API (
          <a href="/v1/openapi.json">/v1/openapi.json</a>).
        </p>
      </main>
    </>
  );
}
