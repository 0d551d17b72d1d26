import { loadEnv } from "vite";
import { defineConfig } from "vitest/config";

// `npm run dev` serves the console with hot reload and forwards API calls to a
// running roost server: ROOST_API=http://127.0.0.1:7700 npm run dev
// (the variable may also live in web/.env.local). Production builds go to
// dist/, which the server embeds and serves at `/`.
export default defineConfig(({ mode }) => {
  const api = loadEnv(mode, ".", "ROOST_").ROOST_API ?? "http://127.0.0.1:7700";
  const proxy = { target: api, changeOrigin: false };
  return {
    build: {
      outDir: "dist",
      emptyOutDir: true,
      assetsDir: "assets",
      // Source maps for mapping a minified stack back (`npm run map-stack`), without the
      // `//# sourceMappingURL` comment: browsers never ask for them, and the server does
      // not embed them (crates/roost-http/build.rs leaves *.map out).
      sourcemap: "hidden",
      rollupOptions: {
        // TanStack Query marks its modules "use client" (for React Server Components);
        // meaningless in a client-only bundle.
        onwarn(warning, warn) {
          if (warning.code === "MODULE_LEVEL_DIRECTIVE") return;
          warn(warning);
        },
      },
    },
    server: {
      proxy: { "/v1": { ...proxy, ws: true }, "/health": proxy },
    },
    test: {
      environment: "node",
      include: ["src/**/*.test.ts", "src/**/*.test.tsx", "lint/**/*.test.ts"],
    },
  };
});
