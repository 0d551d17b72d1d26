import { lazy, Suspense, useCallback, useEffect, useState, type ComponentType, type LazyExoticComponent } from "react";
import { useQueryClient } from "@tanstack/react-query";
import { setUnauthorizedHandler, whoami, type Whoami } from "./api";
import { Layout } from "./components/Layout";
import { Toasts } from "./components/toast";
import { EmptyState, Loading } from "./components/ui";
import { useEventStream } from "./events";
import { LOGIN_PATH, currentPath, loginUrl, matchPath, navigate, safeNext } from "./nav";
import { Dashboard } from "./pages/Dashboard";
import { Login } from "./pages/Login";
import { Link, useLocation } from "./router";
import { SessionProvider } from "./session";

type Session =
  | { state: "loading" }
  | { state: "anonymous" }
  | { state: "signed-in"; who: Whoami }
  | { state: "unreachable"; message: string };

// Pages load on demand so the first paint needs only the shell and the dashboard; the
// page a deep link points at starts loading at once, alongside the session check.
const load = {
  instances: () => import("./pages/Instances"),
  launch: () => import("./pages/Launch"),
  instance: () => import("./pages/Instance"),
  images: () => import("./pages/Images"),
  projects: () => import("./pages/Projects"),
  users: () => import("./pages/Users"),
  tokens: () => import("./pages/Tokens"),
  audit: () => import("./pages/Audit"),
  operations: () => import("./pages/Operations"),
  account: () => import("./pages/Account"),
};
const InstancesPage = lazy(() => load.instances().then((m) => ({ default: m.InstancesPage })));
const LaunchWizard = lazy(() => load.launch().then((m) => ({ default: m.LaunchWizard })));
const InstancePage = lazy(() => load.instance().then((m) => ({ default: m.InstancePage })));
const ImagesPage = lazy(() => load.images().then((m) => ({ default: m.ImagesPage })));
const ProjectsPage = lazy(() => load.projects().then((m) => ({ default: m.ProjectsPage })));
const ProjectPage = lazy(() => load.projects().then((m) => ({ default: m.ProjectPage })));
const UsersPage = lazy(() => load.users().then((m) => ({ default: m.UsersPage })));
const TokensPage = lazy(() => load.tokens().then((m) => ({ default: m.TokensPage })));
const AuditPage = lazy(() => load.audit().then((m) => ({ default: m.AuditPage })));
const OperationsPage = lazy(() => load.operations().then((m) => ({ default: m.OperationsPage })));
const AccountPage = lazy(() => load.account().then((m) => ({ default: m.AccountPage })));

/** Starts loading the code of the page at `path` (the first segment decides). */
export function preload(path: string): void {
  const seg = path.split("/")[1] ?? "";
  const deeper = path.split("/").length > 2;
  const key = seg === "instances" ? (deeper ? (path === "/instances/new" ? "launch" : "instance") : "instances") : seg;
  const f = (load as Record<string, (() => Promise<unknown>) | undefined>)[key];
  if (f) void f().catch(() => {});
}

type Page = ComponentType<{ params: Record<string, string> }> | LazyExoticComponent<ComponentType<{ params: Record<string, string> }>>;

/** The console's routes, most specific first. */
export const ROUTES: [string, Page][] = [
  ["/", Dashboard],
  ["/instances", InstancesPage],
  ["/instances/new", LaunchWizard],
  ["/instances/:id", InstancePage],
  ["/images", ImagesPage],
  ["/projects", ProjectsPage],
  ["/projects/:id", ProjectPage],
  ["/users", UsersPage],
  ["/tokens", TokensPage],
  ["/audit", AuditPage],
  ["/operations", OperationsPage],
  ["/account", AccountPage],
];

function Routes() {
  const { pathname } = useLocation();
  useEventStream();
  for (const [pattern, Component] of ROUTES) {
    const params = matchPath(pattern, pathname);
    if (params) {
      return (
        <Suspense fallback={<Loading />}>
          <Component key={pathname} params={params} />
        </Suspense>
      );
    }
  }
  return (
    <EmptyState title="Page not found">
      <p>
        Nothing lives at <code>{pathname}</code>. <Link to="/">Go to the dashboard</Link> or press Ctrl+K to search.
      </p>
    </EmptyState>
  );
}

export function App() {
  const [session, setSession] = useState<Session>({ state: "loading" });
  const qc = useQueryClient();

  const check = useCallback(async () => {
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
    preload(window.location.pathname);
    void check();
  }, [check]);

  // A request that finds the session gone sends the user to log in, then back here.
  useEffect(() => {
    setUnauthorizedHandler(() => {
      qc.clear();
      navigate(loginUrl(currentPath()), true);
      setSession({ state: "anonymous" });
    });
    return () => setUnauthorizedHandler(undefined);
  }, [qc]);

  const onSignedIn = useCallback(async () => {
    const next = safeNext(new URLSearchParams(window.location.search).get("next"));
    navigate(next, true);
    await check();
  }, [check]);

  const onSignedOut = useCallback(() => {
    qc.clear();
    navigate(LOGIN_PATH);
    setSession({ state: "anonymous" });
  }, [qc]);

  let body;
  switch (session.state) {
    case "loading":
      body = (
        <main className="center" aria-busy="true">
          <p className="muted">Loading…</p>
        </main>
      );
      break;
    case "unreachable":
      body = (
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
      break;
    case "anonymous":
      body = <Login onSignedIn={onSignedIn} />;
      break;
    case "signed-in":
      body = (
        <SessionProvider who={session.who} signOut={onSignedOut}>
          <Layout>
            <Routes />
          </Layout>
        </SessionProvider>
      );
  }
  return (
    <>
      {body}
      <Toasts />
    </>
  );
}
