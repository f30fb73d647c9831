// Server addresses as the CLI and the Python client take them.

/**
 * The base URL for a server address, as the CLI and the Python client take
 * it: `HOST:PORT` means `http://HOST:PORT`; `http://` and `https://` (TLS)
 * URLs are kept. Any other scheme is an error.
 */
export function serverUrl(address: string): string {
  const trimmed = address.trim().replace(/\/+$/, "");
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(trimmed);
  if (!scheme) return `http://${trimmed}`;
  const name = scheme[1].toLowerCase();
  if (name !== "http" && name !== "https") {
    throw new Error(
      `cannot use server ${trimmed}: '${scheme[1]}://' is not supported; give HOST:PORT, http://HOST:PORT or https://HOST:PORT`,
    );
  }
  return `${name}://${trimmed.slice(scheme[0].length)}`;
}
