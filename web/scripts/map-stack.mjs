// Maps a minified console stack back to the sources, with the hidden source maps the
// production build leaves in web/dist/assets (the server does not serve them):
//   npm run map-stack -- stack.txt        (or the stack on standard input)
// Each "…/assets/NAME.js:LINE:COLUMN" becomes "src/…/File.tsx:LINE:COLUMN (function)".
// The maps must be from the same build as the binary that produced the stack.
import { existsSync, readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { SourceMapConsumer } from "source-map-js";

const assets = process.env.ROOST_CONSOLE_ASSETS ?? join(dirname(fileURLToPath(import.meta.url)), "../dist/assets");
const consumers = new Map();

function consumer(file) {
  if (!consumers.has(file)) {
    const map = join(assets, `${file}.map`);
    consumers.set(file, existsSync(map) ? new SourceMapConsumer(JSON.parse(readFileSync(map, "utf8"))) : null);
  }
  return consumers.get(file);
}

/** The stack `text` with every position in a built asset replaced by its source position. */
export function mapStack(text) {
  return text.replace(/(?:https?:\/\/[^\s()]*?)?\/assets\/([\w.-]+\.js):(\d+):(\d+)/g, (whole, file, line, column) => {
    const c = consumer(file);
    if (!c) return `${whole} [no source map for ${file} in ${assets}]`;
    const p = c.originalPositionFor({ line: Number(line), column: Number(column) - 1 });
    if (!p.source) return whole;
    const source = p.source.replace(/^(\.\.\/)+/, "");
    return `${source}:${p.line}:${p.column + 1}${p.name ? ` (${p.name})` : ""}`;
  });
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  const file = process.argv[2];
  const text = file ? readFileSync(file, "utf8") : readFileSync(0, "utf8");
  process.stdout.write(mapStack(text));
}
