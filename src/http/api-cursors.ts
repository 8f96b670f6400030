/**
 * `GET /api/triggers/cursors`: where each trigger the status names stands in its source, as
 * the store keeps it (`{ <trigger>: { cursor, version } | null }`), for the dashboard's
 * Triggers page. Read through the Store interface; the cursor is the trigger's own shape.
 */
import type { ApiRoute } from "./api.js";

export const CURSOR_ROUTES: ApiRoute[] = [
  {
    method: "GET",
    path: /^\/api\/triggers\/cursors$/,
    name: "trigger-cursors",
    mutating: false,
    run: async (ctx) => {
      const snap = await ctx.snapshot();
      const out: Record<string, unknown> = {};
      await Promise.all(snap.triggers.map(async (t) => void (out[t.name] = await ctx.store.getCursor(t.name))));
      return { body: out };
    },
  },
];
