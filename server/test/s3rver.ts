// s3rver (npm) as the S3 of the s3 driver's tests, on 127.0.0.1 with a temp directory of its own.
// It speaks S3 but does not check signatures; tests verify our presigned URLs' SigV4 themselves.
// @ts-ignore: s3rver ships no types
import S3rver from "s3rver";
import { tempDir } from "./harness";

/** s3rver's fixed credentials. */
export const S3RVER_CREDENTIALS = { accessKeyId: "S3RVER", secretAccessKey: "S3RVER" };

export async function startS3rver() {
  const server = new S3rver({ address: "127.0.0.1", port: 0, silent: true, directory: tempDir("s3rver") });
  const { port } = (await server.run()) as { port: number };
  return { endpoint: `http://127.0.0.1:${port}`, close: () => server.close() as Promise<void> };
}
