import { Suspense, use, useCallback, useEffect, useState, type ComponentType } from "react";
import { useQueryClient } from "@tanstack/react-query";
import { setUnauthorizedHandler, whoami, type Whoami } from "./api";
import { Layout } from "./components/Layout";
import { PageErrorBoundary } from "./components/PageErrorBoundary";
import { Toasts } from "./components/toast";
import { EmptyState, Loading } from "./components/ui";
import { useEventStream } from "./events";
import { LOGIN_PATH, currentPath, loginUrl, matchPath, navigate, safeNext } from "./nav";
import { Dashboard } from "./pages/Dashboard";
import { Login } from "./pages/Login";
import { Link, setPreloader, useLocation } from "./router";
import { SessionProvider } from "./session";

type Session =
  | { state: "loading" }
  | { state: "anonymous" }
  | { state: "signed-in"; who: Whoami }
  | { state: "unreachable"; message: string };

// Pages load on demand so the first paint needs only the shell and the dashboard; the
// page a deep link points at starts loading alongside the session check, and a page
// whose code is already here renders without suspending (no Suspense delay).
type PageProps = { params: Record<string, string> };
type Page = ComponentType<PageProps>;

/** Forgets the pages whose code failed to load, so the next visit loads it again. */
const forgetFailedLoads: (() => void)[] = [];
function retryFailedPageLoads(): void {
  for (const forget of forgetFailedLoads) forget();
}

function lazyPage<M>(loader: () => Promise<M>, pick: (m: M) => Page): { Page: Page; load: () => Promise<M> } {
  let mod: M | undefined;
  let promise: (Promise<M> & { status?: string; value?: M; reason?: unknown }) | undefined;
  const load = () =>
    (promise ??= Object.assign(
      loader().then(
        (m) => {
          mod = m;
          Object.assign(promise!, { status: "fulfilled", value: m });
          return m;
        },
        (e: unknown) => {
          // Kept as failed (the page's error panel says so) until the panel's retry or
          // leaving the page forgets it (retryFailedPageLoads).
          Object.assign(promise!, { status: "rejected", reason: e });
          throw e;
        },
      ),
      {},
    ));
  forgetFailedLoads.push(() => {
    if (promise?.status === "rejected") promise = undefined;
  });
  function LazyPage(props: PageProps) {
    const m = mod ?? use(load());
    const C = pick(m);
    return <C {...props} />;
  }
  return { Page: LazyPage, load };
}

const pages = {
  instances: lazyPage(() => import("./pages/Instances"), (m) => m.InstancesPage),
  launch: lazyPage(() => import("./pages/Launch"), (m) => m.LaunchWizard),
  instance: lazyPage(() => import("./pages/Instance"), (m) => m.InstancePage),
  images: lazyPage(() => import("./pages/Images"), (m) => m.ImagesPage),
  projects: lazyPage(() => import("./pages/Projects"), (m) => m.ProjectsPage),
  project: lazyPage(() => import("./pages/Projects"), (m) => m.ProjectPage),
  users: lazyPage(() => import("./pages/Users"), (m) => m.UsersPage),
  tokens: lazyPage(() => import("./pages/Tokens"), (m) => m.TokensPage),
  audit: lazyPage(() => import("./pages/Audit"), (m) => m.AuditPage),
  operations: lazyPage(() => import("./pages/Operations"), (m) => m.OperationsPage),
  account: lazyPage(() => import("./pages/Account"), (m) => m.AccountPage),
  buckets: lazyPage(() => import("./pages/Buckets"), (m) => m.BucketsPage),
  bucket: lazyPage(() => import("./pages/BucketBrowser"), (m) => m.BucketPage),
  s3keys: lazyPage(() => import("./pages/S3Keys"), (m) => m.S3KeysPage),
  networks: lazyPage(() => import("./pages/Networks"), (m) => m.NetworksPage),
  groups: lazyPage(() => import("./pages/SecurityGroups"), (m) => m.SecurityGroupsPage),
  group: lazyPage(() => import("./pages/SecurityGroups"), (m) => m.SecurityGroupPage),
  volumes: lazyPage(() => import("./pages/Volumes"), (m) => m.VolumesPage),
  volume: lazyPage(() => import("./pages/Volumes"), (m) => m.VolumePage),
  sshkeys: lazyPage(() => import("./pages/SshKeys"), (m) => m.SshKeysPage),
  node: lazyPage(() => import("./pages/SshKeys"), (m) => m.NodePage),
  sandboxes: lazyPage(() => import("./pages/Sandboxes"), (m) => m.SandboxesPage),
  sandbox: lazyPage(() => import("./pages/Sandbox"), (m) => m.SandboxPage),
  templates: lazyPage(() => import("./pages/SandboxTemplates"), (m) => m.SandboxTemplatesPage),
  tasks: lazyPage(() => import("./pages/SystemTasks"), (m) => m.SystemTasksPage),
};

/** The console's routes, most specific first, with the code each needs. */
export const ROUTES: [string, Page, (() => Promise<unknown>) | null][] = [
  ["/", Dashboard, null],
  ["/instances", pages.instances.Page, pages.instances.load],
  ["/instances/new", pages.launch.Page, pages.launch.load],
  ["/instances/:id", pages.instance.Page, pages.instance.load],
  ["/images", pages.images.Page, pages.images.load],
  ["/projects", pages.projects.Page, pages.projects.load],
  ["/projects/:id", pages.project.Page, pages.project.load],
  ["/users", pages.users.Page, pages.users.load],
  ["/tokens", pages.tokens.Page, pages.tokens.load],
  ["/audit", pages.audit.Page, pages.audit.load],
  ["/operations", pages.operations.Page, pages.operations.load],
  ["/account", pages.account.Page, pages.account.load],
  ["/networks", pages.networks.Page, pages.networks.load],
  ["/buckets", pages.buckets.Page, pages.buckets.load],
  ["/buckets/:id", pages.bucket.Page, pages.bucket.load],
  ["/s3-keys", pages.s3keys.Page, pages.s3keys.load],
  ["/security-groups", pages.groups.Page, pages.groups.load],
  ["/security-groups/:id", pages.group.Page, pages.group.load],
  ["/volumes", pages.volumes.Page, pages.volumes.load],
  ["/volumes/:id", pages.volume.Page, pages.volume.load],
  ["/ssh-keys", pages.sshkeys.Page, pages.sshkeys.load],
  ["/node", pages.node.Page, pages.node.load],
  ["/sandboxes", pages.sandboxes.Page, pages.sandboxes.load],
  ["/sandboxes/:id", pages.sandbox.Page, pages.sandbox.load],
  ["/sandbox-templates", pages.templates.Page, pages.templates.load],
  ["/system/tasks", pages.tasks.Page, pages.tasks.load],
];

/** Starts loading the code of the page at `path`. */
export function preload(path: string): void {
  for (const [pattern, , load] of ROUTES) {
    if (matchPath(pattern, path)) {
      void load?.().catch(() => {});
      return;
    }
  }
}

setPreloader(preload);

function Routes() {
  const { pathname } = useLocation();
  const qc = useQueryClient();
  useEventStream();
  // Trying a failed page again, or leaving it, starts afresh: its code is loaded again
  // if that failed, and its cached answers (unmounted by then) are dropped.
  const dropInactive = useCallback(() => {
    retryFailedPageLoads();
    qc.removeQueries({ type: "inactive" });
  }, [qc]);
  for (const [pattern, Component] of ROUTES) {
    const params = matchPath(pattern, pathname);
    if (params) {
      return (
        <PageErrorBoundary key={pathname} path={pathname} onLeaveFailure={dropInactive}>
          <Suspense fallback={<Loading />}>
            <Component params={params} />
          </Suspense>
        </PageErrorBoundary>
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
