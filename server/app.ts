import { Hono } from "hono";
import type { AppContext, AppEnv } from "./context";
import { errors, renderError } from "./http/errors";
import { bodyLimit, clientIp, publicApiCors, requestEnvelope, sameOrigin } from "./http/middleware";
import { requireAdmin } from "./http/auth";
import { healthRoutes } from "./health/routes";
import { adminRoutes } from "./admin/routes";
import { projectRoutes } from "./projects/routes";
import { keyRoutes } from "./keys/routes";
import { dataRoutes } from "./data/routes";
import type { ProjectPools } from "./data/pools";
import { provisionRoutes } from "./projects/provisionRoute";
import { jobRoutes } from "./jobs/routes";
import { isStreamedUpload, storageAdminRoutes, storageObjectCors, storageRoutes } from "./storage/routes";
import { sqlRoutes } from "./sql/routes";
import { serveUi } from "./ui/routes";
import { backupRoutes, isTableImport, signedBackupDownload, signedUpload } from "./backups/routes";

/**
 * The HTTP server's handlers: Bun routes the data API's two prefixes (its hottest path) straight to
 * handlers of their own (server/data/routes.ts), without matching against every admin, storage and
 * UI route; everything else goes to the main app. Both give the same envelope (request id, security
 * headers, access log), body limit and error shape.
 */
export function buildApp(ctx: AppContext, pools: ProjectPools) {
  return { routes: dataRoutes(ctx, pools), fetch: mainApp(ctx).fetch };
}

function mainApp(ctx: AppContext) {
  const app = new Hono<AppEnv>();
  app.use(requestEnvelope());
  app.on(["POST", "PUT", "PATCH", "DELETE"], "*", bodyLimit(ctx.config.bodyLimit, (c) => isStreamedUpload(c) || isTableImport(c)));
  app.onError(renderError);
  app.notFound((c) => renderError(errors.routeNotFound(), c));
  // Only what is audited or rate-limited by address needs the client's IP (looking it up costs on every request).
  app.use("/admin/api/*", clientIp(ctx.config.trustProxy));
  app.use("/provision", clientIp(ctx.config.trustProxy));

  app.route("/", healthRoutes(ctx));
  app.route("/", provisionRoutes(ctx));
  // A signed backup download carries its credential in its URL: checked before requireAdmin.
  app.get("/admin/api/projects/:id/backups/:backup/download", signedBackupDownload(ctx));
  // So do signed uploads of a dump or of a file to import.
  app.put("/admin/api/projects/:id/backups/upload", signedUpload(ctx, "backup_upload"));
  app.put("/admin/api/projects/:id/tables/:table/import", signedUpload(ctx, "table_import"));
  app.use("/admin/api/*", sameOrigin(ctx.config.trustProxy), requireAdmin(ctx, ["/admin/api/login", "/admin/api/setup"]));
  app.route("/admin/api", adminRoutes(ctx));
  app.route("/admin/api/projects", projectRoutes(ctx));
  app.route("/admin/api/projects", keyRoutes(ctx));
  app.route("/admin/api/jobs", jobRoutes(ctx));
  app.route("/admin/api/projects", storageAdminRoutes(ctx));
  app.route("/admin/api/projects", sqlRoutes(ctx));
  app.route("/admin/api/projects", backupRoutes(ctx));
  app.use("/v1/storage/object/*", storageObjectCors());
  // The signed-URL endpoint has CORS of its own (storageObjectCors).
  const apiCors = publicApiCors();
  app.use("/v1/*", (c, next) => (c.req.path.startsWith("/v1/storage/object/") ? next() : apiCors(c, next)));
  app.route("/v1/storage", storageRoutes(ctx));
  // Last: the admin UI answers GETs no API route took (never under the API prefixes).
  app.get("/*", serveUi());
  return app;
}
