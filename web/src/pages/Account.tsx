import { useState } from "react";
import { api } from "../api";
import { PageHeader } from "../components/Layout";
import { toast } from "../components/toast";
import { useTitle } from "../router";
import { useSession } from "../session";

export function AccountPage() {
  useTitle("Account");
  const s = useSession();
  const [cur, setCur] = useState("");
  const [next, setNext] = useState("");
  const u = s.who.user;
  return (
    <>
      <PageHeader crumbs={[{ label: "Account" }]} title="Your account" />
      <div className="grid">
        <section className="panel" aria-labelledby="h-me">
          <h2 id="h-me">Who you are</h2>
          <dl className="spec">
            <dt>User</dt>
            <dd>{u.name}</dd>
            <dt>Id</dt>
            <dd><code>{u.id}</code></dd>
            <dt>User role</dt>
            <dd>{u.role}</dd>
            <dt>Current project</dt>
            <dd>{s.project?.name ?? "—"} ({s.role ?? "no access"})</dd>
            <dt>Signed in with</dt>
            <dd>{s.who.auth}</dd>
          </dl>
        </section>
        <section className="panel" aria-labelledby="h-pw">
          <h2 id="h-pw">Change password</h2>
          <form
            className="stack"
            onSubmit={async (e) => {
              e.preventDefault();
              try {
                await api.post("/v1/auth/password", { current_password: cur, new_password: next });
                toast.success("Password changed; your other sessions ended");
                setCur("");
                setNext("");
              } catch (err) {
                toast.error(err);
              }
            }}
          >
            <label>
              Current password
              <input type="password" autoComplete="current-password" required value={cur} onChange={(e) => setCur(e.target.value)} />
            </label>
            <label>
              New password
              <input type="password" autoComplete="new-password" required minLength={8} value={next} onChange={(e) => setNext(e.target.value)} />
            </label>
            <div className="row end">
              <button type="submit">Change</button>
            </div>
          </form>
        </section>
      </div>
    </>
  );
}
