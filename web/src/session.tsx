// The signed-in session: who, the current project, and what the user may do there
// (the same rule as the API's policy: admins everything; others their membership role,
// capped by their user role and at operator).
import { createContext, useContext, useMemo, useState, type ReactNode } from "react";
import { useQuery } from "@tanstack/react-query";
import { api, type Whoami } from "./api";
import type { Member, Page, Project, Role } from "./types";

const ORDER: Role[] = ["viewer", "operator", "admin"];
const rank = (r: Role) => ORDER.indexOf(r);

/** The effective role in a project, as roost-control's policy computes it. */
export function effectiveRole(userRole: Role, membership: Role | null): Role | null {
  if (userRole === "admin") return "admin";
  if (!membership) return null;
  const r = Math.min(rank(membership), rank(userRole), rank("operator"));
  return ORDER[Math.max(r, 0)] ?? "viewer";
}

export interface Session {
  who: Whoami;
  isAdmin: boolean;
  projects: Project[];
  project: Project | null;
  setProject: (name: string) => void;
  role: Role | null;
  /** Why mutations in the current project are refused, or null when they are allowed. */
  readOnly: string | null;
  /** Why admin-only actions are refused, or null for admins. */
  adminOnly: string | null;
  signOut: () => void;
}

const Ctx = createContext<Session | null>(null);
const PROJECT_KEY = "roost_project";

export function useSession(): Session {
  const s = useContext(Ctx);
  if (!s) throw new Error("useSession outside SessionProvider");
  return s;
}

export function SessionProvider({ who, signOut, children }: { who: Whoami; signOut: () => void; children: ReactNode }) {
  const projects = useQuery({
    queryKey: ["projects", "all"],
    queryFn: () => api.get<Page<Project>>("/v1/projects?limit=1000&sort=name"),
  });
  const [chosen, setChosen] = useState<string | null>(() => {
    try {
      return localStorage.getItem(PROJECT_KEY);
    } catch {
      return null;
    }
  });
  const list = useMemo(() => projects.data?.items ?? [], [projects.data]);
  const project =
    list.find((p) => p.name === chosen) ?? list.find((p) => p.name === "default") ?? list[0] ?? null;
  const isAdmin = who.user.role === "admin";
  const members = useQuery({
    queryKey: ["projects", project?.name, "members"],
    queryFn: () => api.all<Member>(`/v1/projects/${encodeURIComponent(project!.name)}/members`),
    enabled: Boolean(project) && !isAdmin,
  });
  const memberList = members.data ?? [];
  const membership = memberList.find((m) => m.user_id === who.user.id)?.role ?? null;
  const role = effectiveRole(who.user.role as Role, isAdmin ? "admin" : membership);
  const readOnly =
    role === "admin" || role === "operator"
      ? null
      : project
        ? `You are a viewer in project '${project.name}': read only`
        : "No project";
  const value = useMemo<Session>(
    () => ({
      who,
      isAdmin,
      projects: list,
      project,
      setProject: (name: string) => {
        setChosen(name);
        try {
          localStorage.setItem(PROJECT_KEY, name);
        } catch {
          // not persisted; still switched for this tab
        }
      },
      role,
      readOnly,
      adminOnly: isAdmin ? null : "Only administrators can do this",
      signOut,
    }),
    [who, isAdmin, list, project, role, readOnly, signOut],
  );
  if (projects.isPending) {
    return (
      <main className="center" aria-busy="true">
        <p className="muted">Loading…</p>
      </main>
    );
  }
  return <Ctx.Provider value={value}>{children}</Ctx.Provider>;
}
