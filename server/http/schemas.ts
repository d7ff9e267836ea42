import { z } from "zod";

// Schemas shared by routes. Strings that end up in Postgres must not carry NUL (Postgres rejects it)
// or other control characters (they only ever cause trouble in logs and UIs).

export const pageSchema = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(50),
  offset: z.coerce.number().int().min(0).max(1_000_000_000).default(0),
});

export const safeText = (max: number) =>
  z
    .string()
    .trim()
    .min(1)
    .max(max)
    .refine((s) => !/[\u0000-\u001f\u007f]/.test(s), "must not contain control characters");

/** An ISO timestamp with offset, in the future, and one Postgres can store. */
export const futureTimestamp = z.iso
  .datetime({ offset: true })
  .refine((s) => Date.parse(s) > Date.now(), "must be in the future")
  .refine((s) => Date.parse(s) < Date.UTC(10000, 0, 1), "must be before the year 10000");
