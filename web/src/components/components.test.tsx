// Components rendered to HTML (react-dom/server, no browser needed).
import { renderToStaticMarkup } from "react-dom/server";
import { describe, expect, it } from "vitest";
import { ResourceTable } from "./ResourceTable";
import { ApiError } from "../api";
import { describeFailure, PageError } from "./PageErrorBoundary";
import { NetworkDns, NetworkName } from "../pages/Networks";
import { NAV, navSections } from "./Layout";
import { ActionButton, Confirm, ErrorBox, LongText, StatusBadge } from "./ui";

interface Row {
  id: string;
  name: string;
}

const columns = [
  { label: "Name", render: (r: Row) => r.name },
  { label: "Id", render: (r: Row) => <code>{r.id}</code> },
];

describe("ResourceTable", () => {
  it("renders a row per item under its headers", () => {
    const html = renderToStaticMarkup(
      <ResourceTable label="Things" rows={[{ id: "a1", name: "alpha" }, { id: "b2", name: "beta" }]} columns={columns} rowKey={(r) => r.id} empty={{ title: "None", body: "make one" }} />,
    );
    expect(html).toContain('aria-label="Things"');
    expect(html.match(/<tr>/g)?.length).toBe(3);
    expect(html).toContain("<th scope=\"col\">Name</th>");
    expect(html).toContain("<code>b2</code>");
  });

  it("says what to do next when empty, and shows errors", () => {
    const empty = renderToStaticMarkup(<ResourceTable label="Things" rows={[]} columns={columns} rowKey={(r) => r.id} empty={{ title: "No things", body: "Create one." }} />);
    expect(empty).toContain("No things");
    expect(empty).toContain("Create one.");
    expect(empty).not.toContain("<table");
    const err = renderToStaticMarkup(<ResourceTable label="Things" rows={undefined} error={new Error("instance 'x' not found")} columns={columns} rowKey={(r) => r.id} empty={{ title: "", body: "" }} />);
    expect(err).toContain('role="alert"');
    expect(err).toContain("instance &#x27;x&#x27; not found");
  });
});

describe("ActionButton", () => {
  it("is disabled with the reason when there is one", () => {
    const html = renderToStaticMarkup(<ActionButton reason="You are a viewer in project 'default': read only">Delete</ActionButton>);
    expect(html).toContain("disabled");
    expect(html).toContain('title="You are a viewer in project &#x27;default&#x27;: read only"');
    expect(renderToStaticMarkup(<ActionButton reason={null}>Delete</ActionButton>)).not.toContain("disabled");
  });
});

describe("Confirm", () => {
  it("keeps a typed confirmation disabled until the name is typed", () => {
    const html = renderToStaticMarkup(<Confirm title="Terminate web?" body="gone" action="Terminate" typed="web" onConfirm={() => {}} onClose={() => {}} />);
    expect(html).toContain("Type <code>web</code> to confirm");
    expect(html).toMatch(/<button type="submit"[^>]*disabled=""[^>]*>Terminate<\/button>/);
    const plain = renderToStaticMarkup(<Confirm title="Stop?" body="x" action="Stop" onConfirm={() => {}} onClose={() => {}} />);
    expect(plain).not.toMatch(/<button type="submit"[^>]*disabled/);
  });
});

describe("StatusBadge", () => {
  it("exposes the status for styling and tests", () => {
    expect(renderToStaticMarkup(<StatusBadge status="running" />)).toContain('data-status="running"');
  });
});

describe("PageError", () => {
  it("names an API failure with its request id, and offers a retry and a reload", () => {
    const html = renderToStaticMarkup(
      <PageError error={new ApiError(500, "internal", "database is locked", "req-42")} path="/volumes" retry={() => {}} />,
    );
    expect(html).toContain("The API refused a request this page needs");
    expect(html).toContain("database is locked (HTTP 500, internal)");
    expect(html).toContain('<code data-testid="request-id">req-42</code>');
    expect(html).toContain("Try again");
    expect(html).toContain("Reload page");
    expect(html).toContain("page: /volumes");
  });

  it("says a page's code could not be loaded, and what any other error was", () => {
    const chunk = describeFailure(new TypeError("Failed to fetch dynamically imported module: /assets/Volumes-abc.js"));
    expect(chunk.title).toBe("The console could not load this page's code");
    expect(chunk.reload).toBe(true);
    const other = describeFailure(new TypeError("l is not a function"));
    expect(other).toEqual({ title: "This page failed", detail: "TypeError: l is not a function", reload: false });
    expect(renderToStaticMarkup(<PageError error={new Error("x")} path="/" retry={() => {}} />)).not.toContain("request-id");
  });
});

describe("ErrorBox", () => {
  it("shows the request id of an API error", () => {
    expect(renderToStaticMarkup(<ErrorBox error={new ApiError(503, "unavailable", "store down", "req-7")} />)).toContain("<code>req-7</code>");
    expect(renderToStaticMarkup(<ErrorBox error={new Error("plain")} />)).not.toContain("request id");
  });
});

describe("LongText", () => {
  it("shows a short message whole, and a long one's first line with an expander", () => {
    expect(renderToStaticMarkup(<LongText text="done" />)).toBe('<span class="longtext">done</span>');
    const log = `pip install failed\n${"Collecting numpy\n".repeat(500)}`;
    const html = renderToStaticMarkup(<LongText text={log} />);
    expect(html).toContain("<span>pip install failed</span>");
    expect(html).not.toContain("Collecting numpy");
    expect(html).toContain('aria-expanded="false"');
    expect(html).toContain("Show the whole message");
    const wide = renderToStaticMarkup(<LongText text={"x".repeat(500)} max={100} />);
    expect(wide).toContain(`<span>${"x".repeat(100)}…</span>`);
  });
});

describe("navigation", () => {
  it("groups the pages by area, with the dashboard first and the account last", () => {
    const sections = navSections(true);
    expect(sections.map((s) => s.group)).toEqual([null, "Compute", "Storage", "Network", "Identity and admin", null]);
    expect(sections[0]!.items.map((i) => i.label)).toEqual(["Dashboard"]);
    expect(sections.at(-1)!.items.map((i) => i.label)).toEqual(["Account"]);
    expect(sections[1]!.items.map((i) => i.label)).toEqual(["Instances", "Images", "Sandboxes", "Templates"]);
    // Every page is in exactly one section.
    expect(sections.flatMap((s) => s.items).length).toBe(NAV.length);
    const user = navSections(false).flatMap((s) => s.items.map((i) => i.label));
    expect(user).not.toContain("Users");
    expect(user).not.toContain("Audit log");
  });
});

describe("networks", () => {
  const net = { id: "net-1", name: "default", project_id: "p", cidr: "10.0.0.0/24", gateway: "10.0.0.1", bridge: "b", nat: true, dns: true, default: true, peers: [], instance_count: 0, addresses_used: 1, addresses_total: 254, created_at: "" };
  it("does not say default twice, and marks a default network otherwise named", () => {
    expect(renderToStaticMarkup(<NetworkName network={net} />)).toBe('<strong class="nowrap">default</strong>');
    expect(renderToStaticMarkup(<NetworkName network={{ ...net, name: "lan" }} />)).toContain(">default</span>");
  });
  it("shows the DNS zone when the network has DNS", () => {
    expect(renderToStaticMarkup(<NetworkDns network={net} />)).toContain("*.default.internal");
    expect(renderToStaticMarkup(<NetworkDns network={{ ...net, dns: false }} />)).toContain("off");
  });
});
