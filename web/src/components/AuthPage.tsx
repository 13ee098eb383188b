// Register and log in. Validation is the API's: each detail of a 400 is
// shown beside its field, other errors (409, 401, 429) above the button.

import { useState } from "preact/hooks";
import { api, ApiError, messageOf } from "../api";
import { session } from "../session";
import type { Tokens, User } from "../types";

type Mode = "login" | "register";

export function AuthPage() {
  const [mode, setMode] = useState<Mode>("login");
  const [fields, setFields] = useState({ login: "", username: "", email: "", password: "" });
  const [error, setError] = useState<ApiError | null>(null);
  const [failure, setFailure] = useState("");
  const [busy, setBusy] = useState(false);

  const set = (name: keyof typeof fields) => (e: Event) =>
    setFields({ ...fields, [name]: (e.target as HTMLInputElement).value });

  const submit = async (e: Event) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    setFailure("");
    try {
      const body =
        mode === "login"
          ? { login: fields.login, password: fields.password }
          : { username: fields.username, email: fields.email, password: fields.password };
      const answer = await api<{ user: User; tokens: Tokens }>("POST", `/v1/auth/${mode}`, body, {
        auth: false,
      });
      session.set(answer.tokens, answer.user);
    } catch (err) {
      if (err instanceof ApiError && err.details.length > 0) setError(err);
      else setFailure(messageOf(err));
    } finally {
      setBusy(false);
    }
  };

  const field = (name: keyof typeof fields, label: string, type = "text", auto = "") => (
    <label class="field">
      <span>{label}</span>
      <input
        name={name}
        type={type}
        value={fields[name]}
        onInput={set(name)}
        autocomplete={auto}
        aria-invalid={error?.forField(name) ? "true" : undefined}
        required
      />
      {error?.forField(name) && (
        <span class="field-error" data-field={name}>
          {error.forField(name)}
        </span>
      )}
    </label>
  );

  return (
    <main class="auth">
      <form class="auth-card" onSubmit={submit} noValidate>
        <h1>Chat</h1>
        <div class="tabs" role="tablist">
          {(["login", "register"] as Mode[]).map((m) => (
            <button
              type="button"
              role="tab"
              aria-selected={mode === m}
              class={mode === m ? "tab active" : "tab"}
              onClick={() => {
                setMode(m);
                setError(null);
                setFailure("");
              }}
            >
              {m === "login" ? "Log in" : "Register"}
            </button>
          ))}
        </div>
        {mode === "login" ? (
          field("login", "Username or email", "text", "username")
        ) : (
          <>
            {field("username", "Username", "text", "username")}
            {field("email", "Email", "email", "email")}
          </>
        )}
        {field(
          "password",
          "Password",
          "password",
          mode === "login" ? "current-password" : "new-password",
        )}
        {mode === "register" && (
          <p class="hint">
            3–80 letters, digits or _ for the username; a password of 8–128 characters with an
            upper-case letter, a lower-case letter and a digit.
          </p>
        )}
        {failure && (
          <p class="error" role="alert">
            {failure}
          </p>
        )}
        <button type="submit" class="primary" disabled={busy}>
          {busy ? "…" : mode === "login" ? "Log in" : "Create account"}
        </button>
      </form>
    </main>
  );
}
