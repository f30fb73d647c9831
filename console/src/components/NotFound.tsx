// What an unknown run or address shows, at once.

export function NotFound({ what }: { what: string }) {
  return (
    <section class="card not-found" data-testid="not-found">
      <h1>Not found</h1>
      <p>{what}</p>
      <p>
        <a href="/">All runs</a>
      </p>
    </section>
  );
}
