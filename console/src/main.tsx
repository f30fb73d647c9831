// The console: one page app, routed by path (see router.ts).
import { render } from "preact";
import { useEffect, useState } from "preact/hooks";
import { onUnauthenticated, setToken, token } from "./api";
import { NotFound } from "./components/NotFound";
import { DiffPage } from "./pages/DiffPage";
import { ExperimentPage, ExperimentsList } from "./pages/Experiments";
import { RunPage } from "./pages/RunPage";
import { RunsList } from "./pages/RunsList";
import { interceptLinks, parse, runPageKey, useLocation } from "./router";

function TokenForm({ onSaved }: { onSaved: () => void }) {
  const [value, setValue] = useState("");
  return (
    <form
      class="token-form card"
      onSubmit={(e) => {
        e.preventDefault();
        setToken(value.trim());
        onSaved();
      }}
    >
      <h2>This server needs a token</h2>
      <p>
        The server was started with <code>--auth-token-file</code>. Enter the token; it is kept for this tab only.
      </p>
      <label>
        Token{" "}
        <input
          type="password"
          name="token"
          autocomplete="off"
          value={value}
          onInput={(e) => setValue((e.target as HTMLInputElement).value)}
          required
        />
      </label>{" "}
      <button type="submit">Use token</button>
      {token() ? <p class="error">The token given was refused.</p> : null}
    </form>
  );
}

function App() {
  const { path } = useLocation();
  const [needsToken, setNeedsToken] = useState(false);
  // Remounts every page once a token is given, so each fetches again.
  const [epoch, setEpoch] = useState(0);
  useEffect(() => onUnauthenticated(() => setNeedsToken(true)), []);
  const route = parse(path);
  let page;
  switch (route.page) {
    case "runs":
      page = <RunsList />;
      break;
    case "run":
      page = <RunPage key={runPageKey(route.runId)} runId={route.runId} />;
      break;
    case "diff":
      page = <DiffPage key={`${route.runA}/${route.runB}`} runA={route.runA} runB={route.runB} />;
      break;
    case "experiments":
      page = <ExperimentsList />;
      break;
    case "experiment":
      page = <ExperimentPage key={route.id} id={route.id} />;
      break;
    default:
      page = <NotFound what={`Nothing lives at ${path}.`} />;
  }
  return (
    <>
      <header class="top">
        <a class="brand" href="/">
          retake
        </a>
        <nav>
          <a href="/">Runs</a>
          <a href="/experiments">Experiments</a>
        </nav>
      </header>
      <main>
        {needsToken ? (
          <TokenForm
            onSaved={() => {
              setNeedsToken(false);
              setEpoch((e) => e + 1);
            }}
          />
        ) : (
          <div key={epoch}>{page}</div>
        )}
      </main>
    </>
  );
}

const root = document.getElementById("app")!;
root.replaceChildren();
interceptLinks(root);
render(<App />, root);
