// Components rendered to HTML (react-dom/server, no browser needed).
import { renderToStaticMarkup } from "react-dom/server";
import { describe, expect, it } from "vitest";
import { ResourceTable } from "./ResourceTable";
import { ActionButton, Confirm, StatusBadge } from "./ui";

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
