// The console's frame: navigation, project switcher, user menu, breadcrumbs, palette.
import { useEffect, useState, type ReactNode } from "react";
import { logout } from "../api";
import { Link, useLocation } from "../router";
import { useSession } from "../session";
import { Palette } from "./Palette";
import { toast } from "./toast";

export interface NavItem {
  to: string;
  label: string;
  /** The sidebar section (NAV_GROUPS); none for the dashboard and the account. */
  group?: NavGroup;
  admin?: boolean;
}

/** The sidebar's sections, in order. */
export const NAV_GROUPS = ["Compute", "Storage", "Network", "Identity and admin"] as const;
export type NavGroup = (typeof NAV_GROUPS)[number];

/** Every page of the console (the palette lists them too), by area. Add new resources here. */
export const NAV: NavItem[] = [
  { to: "/", label: "Dashboard" },
  { to: "/instances", label: "Instances", group: "Compute" },
  { to: "/images", label: "Images", group: "Compute" },
  { to: "/sandboxes", label: "Sandboxes", group: "Compute" },
  { to: "/sandbox-templates", label: "Templates", group: "Compute" },
  { to: "/volumes", label: "Volumes", group: "Storage" },
  { to: "/buckets", label: "Buckets", group: "Storage" },
  { to: "/s3-keys", label: "S3 keys", group: "Storage" },
  { to: "/networks", label: "Networks", group: "Network" },
  { to: "/security-groups", label: "Security groups", group: "Network" },
  { to: "/projects", label: "Projects", group: "Identity and admin" },
  { to: "/users", label: "Users", group: "Identity and admin", admin: true },
  { to: "/tokens", label: "API tokens", group: "Identity and admin" },
  { to: "/ssh-keys", label: "SSH keys", group: "Identity and admin" },
  { to: "/audit", label: "Audit log", group: "Identity and admin", admin: true },
  { to: "/operations", label: "Operations", group: "Identity and admin" },
  { to: "/node", label: "Node", group: "Identity and admin" },
  { to: "/system/tasks", label: "System tasks", group: "Identity and admin", admin: true },
  // Last, apart from the areas (the user name in the top bar links here too).
  { to: "/account", label: "Account" },
];

/** The sidebar: the dashboard, one section per area, then the account. */
export function navSections(isAdmin: boolean): { group: NavGroup | null; items: NavItem[] }[] {
  const visible = NAV.filter((n) => !n.admin || isAdmin);
  return [
    { group: null, items: visible.filter((n) => !n.group && n.to === "/") },
    ...NAV_GROUPS.map((group) => ({ group, items: visible.filter((n) => n.group === group) })),
    { group: null, items: visible.filter((n) => !n.group && n.to !== "/") },
  ].filter((sec) => sec.items.length > 0);
}

function isActive(to: string, path: string): boolean {
  return to === "/" ? path === "/" : path === to || path.startsWith(`${to}/`);
}

export function Layout({ children }: { children: ReactNode }) {
  const s = useSession();
  const { pathname } = useLocation();
  const [menu, setMenu] = useState(false);
  const [palette, setPalette] = useState(false);

  useEffect(() => {
    setMenu(false);
  }, [pathname]);
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if ((e.metaKey || e.ctrlKey) && e.key.toLowerCase() === "k") {
        e.preventDefault();
        setPalette((p) => !p);
      }
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, []);

  async function signOut() {
    try {
      await logout();
      s.signOut();
    } catch (e) {
      toast.error(e, "Sign out failed");
    }
  }

  return (
    <div className="shell">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header className="topbar">
        <div className="row">
          <button
            type="button"
            className="ghost menu-toggle"
            aria-expanded={menu}
            aria-controls="sidenav"
            onClick={() => setMenu((m) => !m)}
          >
            ☰<span className="sr-only"> Menu</span>
          </button>
          <Link to="/" className="brand">
            Roost
          </Link>
          <label className="project-switch">
            <span className="sr-only">Project</span>
            <select
              aria-label="Project"
              value={s.project?.name ?? ""}
              onChange={(e) => {
                s.setProject(e.target.value);
                toast.info(`Switched to project ${e.target.value}`);
              }}
            >
              {s.projects.map((p) => (
                <option key={p.id} value={p.name}>
                  {p.name}
                </option>
              ))}
            </select>
          </label>
        </div>
        <div className="row">
          <button type="button" className="secondary small palette-button" onClick={() => setPalette(true)}>
            Search <kbd>Ctrl K</kbd>
          </button>
          <span className="who" data-testid="whoami">
            <Link to="/account" title="Your account">
              {s.who.user.name}
            </Link>
            <span className="badge" title="Your role in this project">
              {s.role ?? s.who.user.role}
            </span>
          </span>
          <button type="button" className="secondary small" onClick={() => void signOut()}>
            Sign out
          </button>
        </div>
      </header>
      <div className="body">
        <nav id="sidenav" className={`sidenav${menu ? " open" : ""}`} aria-label="Main">
          {navSections(s.isAdmin).map((sec, i) => (
            <div key={sec.group ?? `plain-${i}`} className="navsection">
              {sec.group && (
                <h2 className="navgroup" id={`nav-${i}`}>
                  {sec.group}
                </h2>
              )}
              <ul aria-labelledby={sec.group ? `nav-${i}` : undefined}>
                {sec.items.map((n) => (
                  <li key={n.to}>
                    <Link to={n.to} aria-current={isActive(n.to, pathname) ? "page" : undefined}>
                      {n.label}
                    </Link>
                  </li>
                ))}
              </ul>
            </div>
          ))}
        </nav>
        <main id="main" className="content" tabIndex={-1}>
          {children}
        </main>
      </div>
      {palette && <Palette onClose={() => setPalette(false)} />}
    </div>
  );
}

export interface Crumb {
  label: string;
  to?: string;
}

/** A page's breadcrumbs, title and actions. */
export function PageHeader({ crumbs, title, actions }: { crumbs?: Crumb[]; title: ReactNode; actions?: ReactNode }) {
  return (
    <div className="pagehead">
      <nav aria-label="Breadcrumb" className="crumbs">
        <ol>
          <li>
            <Link to="/">Home</Link>
          </li>
          {(crumbs ?? []).map((c) => (
            <li key={c.label}>{c.to ? <Link to={c.to}>{c.label}</Link> : <span aria-current="page">{c.label}</span>}</li>
          ))}
        </ol>
      </nav>
      <div className="pagehead-row">
        <h1>{title}</h1>
        {actions && <div className="row wrap">{actions}</div>}
      </div>
    </div>
  );
}
