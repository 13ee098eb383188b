// Export (GET /v1/export, saved as a file) and import (POST /v1/import of
// our export or a ChatGPT conversations.json), each with its progress.

import { useRef, useState } from "preact/hooks";
import { apiFetch, errorOf, messageOf } from "../api";
import { session } from "../session";

export function Transfer({ onImported }: { onImported(): void }) {
  const [status, setStatus] = useState("");
  const [error, setError] = useState("");
  const [progress, setProgress] = useState<number | null>(null);
  const [busy, setBusy] = useState(false);
  const fileInput = useRef<HTMLInputElement>(null);

  const exportAll = async () => {
    setBusy(true);
    setError("");
    setStatus("Exporting…");
    try {
      const resp = await apiFetch("/v1/export", { method: "GET" });
      if (!resp.ok) throw await errorOf(resp);
      const reader = resp.body!.getReader();
      const parts: BlobPart[] = [];
      let bytes = 0;
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        parts.push(value);
        bytes += value.length;
        setStatus(`Exporting… ${Math.round(bytes / 1024)} KiB`);
      }
      const url = URL.createObjectURL(new Blob(parts, { type: "application/x-ndjson" }));
      const a = document.createElement("a");
      a.href = url;
      a.download = `chat-export-${new Date().toISOString().slice(0, 10)}.ndjson`;
      a.click();
      window.setTimeout(() => URL.revokeObjectURL(url), 10_000);
      setStatus(`Exported ${Math.round(bytes / 1024)} KiB.`);
    } catch (e) {
      setStatus("");
      setError(messageOf(e));
    } finally {
      setBusy(false);
    }
  };

  // XMLHttpRequest, because fetch reports no upload progress.
  const upload = (file: File, token: string) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const xhr = new XMLHttpRequest();
      xhr.open("POST", "/v1/import");
      xhr.setRequestHeader("Authorization", `Bearer ${token}`);
      xhr.setRequestHeader("Content-Type", "application/json");
      xhr.upload.onprogress = (e) => e.lengthComputable && setProgress(e.loaded / e.total);
      xhr.onload = () => resolve({ status: xhr.status, body: xhr.responseText });
      xhr.onerror = () => reject(new Error("cannot reach the server; check your connection"));
      xhr.send(file);
    });

  const importFile = async (file: File) => {
    setBusy(true);
    setError("");
    setStatus(`Importing ${file.name}…`);
    setProgress(0);
    try {
      let answer = await upload(file, await session.accessToken());
      if (answer.status === 401 && (await session.refresh())) {
        answer = await upload(file, await session.accessToken());
      }
      if (answer.status !== 200) {
        throw await errorOf(new Response(answer.body, { status: answer.status }));
      }
      const { imported, skipped } = JSON.parse(answer.body) as {
        imported: number;
        skipped: number;
      };
      setStatus(`Imported ${imported ?? 0} conversation(s), skipped ${skipped ?? 0}.`);
      onImported();
    } catch (e) {
      setStatus("");
      setError(messageOf(e));
    } finally {
      setProgress(null);
      setBusy(false);
      if (fileInput.current) fileInput.current.value = "";
    }
  };

  return (
    <div class="transfer">
      <div class="row">
        <button onClick={exportAll} disabled={busy}>
          Export
        </button>
        <label class={busy ? "button disabled" : "button"}>
          Import
          <input
            ref={fileInput}
            type="file"
            accept=".json,.ndjson,application/json"
            disabled={busy}
            data-testid="import-file"
            onChange={(e) => {
              const f = (e.target as HTMLInputElement).files?.[0];
              if (f) void importFile(f);
            }}
          />
        </label>
      </div>
      {progress !== null && <progress max={1} value={progress} aria-label="Upload progress" />}
      {status && (
        <p class="muted" role="status" data-testid="transfer-status">
          {status}
        </p>
      )}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
    </div>
  );
}
