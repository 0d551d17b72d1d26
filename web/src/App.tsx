import { useCallback, useEffect, useState } from "react";
import { whoami, type Whoami } from "./api";
import { LOGIN_PATH, currentPath, loginUrl, navigate, safeNext } from "./nav";
import { Home } from "./pages/Home";
import { Login } from "./pages/Login";

type Session =
  | { state: "loading" }
  | { state: "anonymous" }
  | { state: "signed-in"; who: Whoami }
  | { state: "unreachable"; message: string };

export function App() {
  const [session, setSession] = useState<Session>({ state: "loading" });

  const check = useCallback(async () => {
    setSession({ state: "loading" });
    try {
      const who = await whoami();
      if (who) {
        // Signed in but sitting on /login (reload, bookmark): go where it points.
        if (window.location.pathname === LOGIN_PATH) {
          navigate(safeNext(new URLSearchParams(window.location.search).get("next")), true);
        }
        setSession({ state: "signed-in", who });
      } else {
        if (window.location.pathname !== LOGIN_PATH) navigate(loginUrl(currentPath()), true);
        setSession({ state: "anonymous" });
      }
    } catch (e) {
      setSession({ state: "unreachable", message: e instanceof Error ? e.message : String(e) });
    }
  }, []);

  useEffect(() => {
    void check();
  }, [check]);

  // Back/forward between /login and the console re-checks the session.
  useEffect(() => {
    const onPop = () => void check();
    window.addEventListener("popstate", onPop);
    return () => window.removeEventListener("popstate", onPop);
  }, [check]);

  const onSignedIn = useCallback(async () => {
    const next = safeNext(new URLSearchParams(window.location.search).get("next"));
    navigate(next, true);
    await check();
  }, [check]);

  const onSignedOut = useCallback(() => {
    navigate(LOGIN_PATH);
    setSession({ state: "anonymous" });
  }, []);

  switch (session.state) {
    case "loading":
      return (
        <main className="center" aria-busy="true">
          <p className="muted">Loading…</p>
        </main>
      );
    case "unreachable":
      return (
        <main className="center">
          <div className="card">
            <h1>Roost</h1>
            <p className="error" role="alert">
              {session.message}
            </p>
            <button type="button" onClick={() => void check()}>
              Retry
            </button>
          </div>
        </main>
      );
    case "anonymous":
      return <Login onSignedIn={onSignedIn} />;
    case "signed-in":
      return <Home who={session.who} onSignedOut={onSignedOut} />;
  }
}
