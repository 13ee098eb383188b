// The signed-in session: the access token in memory, the refresh token in
// localStorage (so a reload, or another tab, stays signed in). Tokens are
// refreshed a minute before the access token expires and whenever the API
// answers 401; concurrent refreshes share one request.

import type { Tokens, User } from "./types";

const REFRESH_KEY = "chat.refresh_token";
const USER_KEY = "chat.user";
/** Refresh this long before the access token expires. */
const REFRESH_MARGIN_S = 60;

type Listener = () => void;

class Session {
  private access = "";
  private timer: number | undefined;
  private inflight: Promise<boolean> | undefined;
  private listeners = new Set<Listener>();
  user: User | null = null;

  constructor() {
    try {
      this.user = JSON.parse(localStorage.getItem(USER_KEY) ?? "null");
    } catch {
      this.user = null;
    }
    if (!localStorage.getItem(REFRESH_KEY)) this.user = null;
  }

  get signedIn(): boolean {
    return this.user !== null;
  }

  subscribe(l: Listener): () => void {
    this.listeners.add(l);
    return () => this.listeners.delete(l);
  }

  private notify() {
    this.listeners.forEach((l) => l());
  }

  /** Keeps the tokens of a register, login or refresh answer. */
  set(tokens: Tokens, user?: User) {
    this.access = tokens.access_token;
    localStorage.setItem(REFRESH_KEY, tokens.refresh_token);
    if (user) {
      this.user = user;
      localStorage.setItem(USER_KEY, JSON.stringify(user));
    }
    window.clearTimeout(this.timer);
    const inMs = Math.max(5, tokens.expires_in - REFRESH_MARGIN_S) * 1000;
    this.timer = window.setTimeout(() => void this.refresh(), inMs);
    if (user) this.notify();
  }

  /** The access token, refreshing first when there is none (after a reload). */
  async accessToken(): Promise<string> {
    if (!this.access && this.signedIn) await this.refresh();
    return this.access;
  }

  /** Trades the refresh token for a new pair; false when the session is over. */
  refresh(): Promise<boolean> {
    if (!this.inflight) {
      this.inflight = this.doRefresh().finally(() => (this.inflight = undefined));
    }
    return this.inflight;
  }

  private async doRefresh(): Promise<boolean> {
    // Read it again: another tab may have rotated it.
    const refresh_token = localStorage.getItem(REFRESH_KEY);
    if (!refresh_token) {
      this.clear();
      return false;
    }
    try {
      const resp = await fetch("/v1/auth/refresh", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token }),
      });
      if (resp.ok) {
        this.set(((await resp.json()) as { tokens: Tokens }).tokens);
        return true;
      }
      if (resp.status === 401 || resp.status === 400) this.clear();
      return false;
    } catch {
      return false; // Offline: keep the session, the next call tries again.
    }
  }

  /** The API refused the tokens even after a refresh. */
  expired() {
    this.clear();
  }

  async logout() {
    const refresh_token = localStorage.getItem(REFRESH_KEY);
    this.clear();
    if (refresh_token) {
      await fetch("/v1/auth/logout", {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ refresh_token }),
      }).catch(() => undefined);
    }
  }

  private clear() {
    const was = this.signedIn;
    this.access = "";
    this.user = null;
    window.clearTimeout(this.timer);
    localStorage.removeItem(REFRESH_KEY);
    localStorage.removeItem(USER_KEY);
    if (was) this.notify();
  }
}

export const session = new Session();
