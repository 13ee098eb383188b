// Reply streams (Chat, Regenerate, StreamReply) as Server-Sent Events read
// from fetch, so they carry the Authorization header and can be aborted.

import { apiFetch, ApiError, errorOf } from "./api";
import type { Message } from "./types";

export interface Delta {
  text: string;
  offset: number;
}

export interface StreamHandlers {
  message?(m: Message): void;
  reply?(m: Message): void;
  delta?(d: Delta): void;
  done?(m: Message): void;
  error?(e: ApiError): void;
}

/** Opens a stream and dispatches its events until it ends or signal aborts. */
export async function openStream(
  method: "GET" | "POST",
  path: string,
  body: unknown,
  handlers: StreamHandlers,
  signal: AbortSignal,
  headers: Record<string, string> = {},
): Promise<void> {
  const h: Record<string, string> = { Accept: "text/event-stream", ...headers };
  if (body !== undefined) h["Content-Type"] = "application/json";
  const resp = await apiFetch(
    path,
    { method, body: body === undefined ? undefined : JSON.stringify(body) },
    { headers: h, signal },
  );
  if (!resp.ok) throw await errorOf(resp);
  if (!resp.body) throw new ApiError(0, "UNKNOWN", "the browser gave no stream");
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value.replace(/\r\n?/g, "\n");
    let end: number;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      dispatch(buffer.slice(0, end), handlers);
      buffer = buffer.slice(end + 2);
    }
  }
}

function dispatch(block: string, h: StreamHandlers) {
  let event = "message";
  const data: string[] = [];
  for (const line of block.split("\n")) {
    if (line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  if (data.length === 0) return;
  const payload = JSON.parse(data.join("\n"));
  switch (event) {
    case "message":
      h.message?.(payload as Message);
      break;
    case "reply":
      h.reply?.(payload as Message);
      break;
    case "delta":
      h.delta?.(payload as Delta);
      break;
    case "done":
      h.done?.(payload.message as Message);
      break;
    case "error": {
      const e = payload.error ?? {};
      h.error?.(new ApiError(0, e.code ?? "UNKNOWN", e.message ?? "the reply failed", e.details));
      break;
    }
  }
}

/** Length in Unicode code points, the unit of every offset of the API. */
export function codePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/** Appends a delta to text, ignoring what text already holds past offset. */
export function applyDelta(text: string, d: Delta): string {
  const have = codePoints(text);
  if (d.offset >= have) return text + d.text;
  const skip = have - d.offset;
  return text + Array.from(d.text).slice(skip).join("");
}
