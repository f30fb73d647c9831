// Answering a run's human waits: approve or reject an approval, give the
// value an input asks for.
import { useState } from "preact/hooks";
import { errorText, noteError, runs, WaitDecision, WaitKind, type Wait } from "../api";
import { ErrorBox, useLoad } from "../hooks";

function WaitCard({ wait, onAnswered }: { wait: Wait; onAnswered: () => void }) {
  const [value, setValue] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  async function answer(decision: WaitDecision) {
    setBusy(true);
    setError(null);
    try {
      await runs.resolveWait({
        runId: wait.runId,
        nodeId: wait.nodeId,
        decision,
        value: wait.kind === WaitKind.INPUT ? value : "",
        feedback: wait.kind === WaitKind.APPROVAL ? value : "",
      });
      onAnswered();
    } catch (e) {
      noteError(e);
      setError(errorText(e));
    } finally {
      setBusy(false);
    }
  }
  let context = "";
  try {
    context = wait.contextJson ? JSON.stringify(JSON.parse(wait.contextJson), null, 2) : "";
  } catch {
    context = wait.contextJson;
  }
  const approval = wait.kind === WaitKind.APPROVAL;
  return (
    <form
      class="wait card"
      data-wait={wait.nodeId}
      onSubmit={(e) => {
        e.preventDefault();
        answer(approval ? WaitDecision.APPROVE : WaitDecision.UNSPECIFIED);
      }}
    >
      <h3>
        {wait.nodeId} waits for {approval ? "an approval" : "an answer"}
      </h3>
      {wait.prompt ? <p class="prompt">{wait.prompt}</p> : null}
      {context ? <pre class="content">{context}</pre> : null}
      <label>
        {approval ? "Feedback (optional)" : "Answer"}{" "}
        <input name="value" value={value} required={!approval} onInput={(e) => setValue((e.target as HTMLInputElement).value)} />
      </label>{" "}
      {approval ? (
        <>
          <button type="submit" class="primary" disabled={busy}>
            Approve
          </button>{" "}
          <button type="button" class="danger" disabled={busy} onClick={() => answer(WaitDecision.REJECT)}>
            Reject
          </button>
        </>
      ) : (
        <button type="submit" class="primary" disabled={busy}>
          Answer
        </button>
      )}
      {error ? (
        <div class="error-box" role="alert">
          {error}
        </div>
      ) : null}
    </form>
  );
}

export function Waits({ runId, version, onAnswered }: { runId: string; version: string; onAnswered: () => void }) {
  const waits = useLoad(() => runs.listWaits({ runId }), [runId, version]);
  if (waits.error) return <ErrorBox error={waits.error} />;
  if (!waits.data?.waits.length) return null;
  return (
    <section class="waits" data-testid="waits">
      {waits.data.waits.map((w) => (
        <WaitCard key={w.nodeId} wait={w} onAnswered={onAnswered} />
      ))}
    </section>
  );
}
