// fetch against the gateway: the error envelope as ApiError, the access
// token on every call, and one refresh then retry on a 401 (session.ts).

import type { ErrorDetail } from "./types";
import { session } from "./session";

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly details: ErrorDetail[] = [],
  ) {
    super(message);
  }

  /** The description of the detail naming field, if any. */
  forField(field: string): string | undefined {
    return this.details.find((d) => d.field === field)?.description;
  }
}

/** Reads the error envelope of a failed answer. */
export async function errorOf(resp: Response): Promise<ApiError> {
  try {
    const body = await resp.json();
    const e = body?.error;
    if (e && typeof e.message === "string") {
      return new ApiError(resp.status, e.code ?? "", e.message, e.details ?? []);
    }
  } catch {
    // Not the envelope (a proxy's page): fall through.
  }
  return new ApiError(resp.status, "UNKNOWN", `the server answered HTTP ${resp.status}`);
}

export interface CallOptions {
  /** Send the access token (default true). */
  auth?: boolean;
  headers?: Record<string, string>;
  signal?: AbortSignal;
}

/** fetch with the access token; a 401 refreshes the tokens once and retries. */
export async function apiFetch(
  path: string,
  init: RequestInit,
  opts: CallOptions = {},
): Promise<Response> {
  const auth = opts.auth ?? true;
  const send = async (): Promise<Response> => {
    const headers: Record<string, string> = { ...opts.headers };
    if (auth) {
      const token = await session.accessToken();
      if (token) headers.Authorization = `Bearer ${token}`;
    }
    try {
      return await fetch(path, { ...init, headers, signal: opts.signal });
    } catch (e) {
      if ((e as Error).name === "AbortError") throw e;
      throw new ApiError(0, "UNAVAILABLE", "cannot reach the server; check your connection");
    }
  };
  let resp = await send();
  if (resp.status === 401 && auth && (await session.refresh())) {
    resp = await send();
  }
  if (resp.status === 401 && auth) session.expired();
  return resp;
}

/** A JSON call: the parsed answer (undefined for 204), or throws ApiError. */
export async function api<T>(
  method: string,
  path: string,
  body?: unknown,
  opts: CallOptions = {},
): Promise<T> {
  const headers: Record<string, string> = { ...opts.headers };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const resp = await apiFetch(
    path,
    { method, body: body === undefined ? undefined : JSON.stringify(body) },
    { ...opts, headers },
  );
  if (!resp.ok) throw await errorOf(resp);
  if (resp.status === 204) return undefined as T;
  return (await resp.json()) as T;
}

export function messageOf(e: unknown): string {
  if (e instanceof ApiError) return e.message;
  if (e instanceof Error) return e.message;
  return String(e);
}
