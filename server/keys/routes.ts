import { Hono, type Context } from "hono";
import { z } from "zod";
import type { AppContext, AppEnv } from "../context";
import { errors, parseBody } from "../http/errors";
import { audit } from "../http/auth";
import { pageSchema } from "../http/schemas";
import * as keys from "./service";

/** /admin/api/projects/:id/keys */
export function keyRoutes(ctx: AppContext) {
  const app = new Hono<AppEnv>();
  const keyId = (c: Context) => {
    const id = z.uuid().safeParse(c.req.param("keyId"));
    if (!id.success) throw errors.notFound("key");
    return id.data;
  };

  app.post("/:id/keys", async (c) => {
    const input = await parseBody(c, keys.createKeySchema);
    const id = c.req.param("id");
    const created = await keys.createKey(ctx, id, input, (db, keyId) =>
      audit(db, c, { action: "project.key.create", target: { type: "project", id }, details: { key_id: keyId, name: input.name, kind: input.kind } }),
    );
    return c.json(created, 201);
  });

  app.get("/:id/keys", async (c) => {
    const page = pageSchema.parse(c.req.query());
    return c.json({ items: await keys.listKeys(ctx, c.req.param("id"), page), ...page });
  });

  app.post("/:id/keys/:keyId/rotate", async (c) => {
    const id = c.req.param("id");
    const { grace_hours } = await parseBody(c, keys.rotateKeySchema);
    const oldKeyId = keyId(c);
    const created = await keys.rotateKey(ctx, id, oldKeyId, grace_hours, (db, newKeyId) =>
      audit(db, c, { action: "project.key.rotate", target: { type: "project", id }, details: { key_id: oldKeyId, new_key_id: newKeyId, grace_hours } }),
    );
    return c.json(created, 201);
  });

  app.delete("/:id/keys/:keyId", async (c) => {
    const id = c.req.param("id");
    const revoked = keyId(c);
    await keys.revokeKey(ctx, id, revoked, (db) => audit(db, c, { action: "project.key.revoke", target: { type: "project", id }, details: { key_id: revoked } }));
    return c.body(null, 204);
  });

  return app;
}
