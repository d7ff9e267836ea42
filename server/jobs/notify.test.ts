import { describe, expect, it } from "bun:test";
import { notificationBody } from "./notify";

const report = { job: { id: "j1", name: "nightly", project_id: null }, runId: "r1", attempt: 3, status: "timed_out", error: "no complete response within 300 ms" };

describe("notificationBody", () => {
  it("gives Discord webhooks a content line", () => {
    for (const url of ["https://discord.com/api/webhooks/1/tok", "https://discordapp.com/api/webhooks/1/tok", "https://canary.discord.com/api/webhooks/1/tok"]) {
      expect(notificationBody(url, report)).toEqual({ content: 'AtlasHub job "nightly" timed_out (attempt 3): no complete response within 300 ms' });
    }
  });

  it("gives any other webhook the run as JSON with a text line", () => {
    expect(notificationBody("https://hooks.example.com/x", { ...report, status: "failed", responseStatus: 502, error: undefined })).toEqual({
      event: "job.run.finished",
      text: 'AtlasHub job "nightly" failed (attempt 3, HTTP 502)',
      job: { id: "j1", name: "nightly", project_id: null },
      run: { id: "r1", status: "failed", attempt: 3, response_status: 502, error: null },
    });
  });
});
