// Where in the editor's text an error is, for the errors whose answer carries no line: the API
// names a JSON error by its path (network.layers[3].sx), and a parse error by "line N" in its text.

/** The line number in a message such as "line 4: unexpected token"; null without one. */
export function lineInMessage(message) {
  const m = /\bline (\d+)/.exec(message || "");
  return m ? Number(m[1]) : null;
}

const lineAt = (text, index) => text.slice(0, index).split("\n").length;

/** The line of `layers[i]` (or of its field, `layers[i].sx`) in JSON text; null when it cannot be found. */
export function lineOfPath(text, path) {
  const m = /layers\[(\d+)\](?:\.(\w+))?/.exec(path || "");
  const start = text.search(/"layers"\s*:\s*\[/);
  if (!m || start < 0) return null;
  // A scan rather than JSON.parse, which keeps no positions; it skips strings, so a bracket inside
  // one is not counted. The objects at depth 2 are the layers.
  let depth = 0, count = -1, inString = false, objectStart = -1;
  for (let i = text.indexOf("[", start); i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (c === "\\") i++;
      else if (c === '"') inString = false;
    } else if (c === '"') {
      inString = true;
    } else if (c === "[" || c === "{") {
      depth++;
      if (depth === 2 && c === "{" && ++count === Number(m[1])) objectStart = i;
    } else if (c === "]" || c === "}") {
      depth--;
      if (depth === 1 && objectStart >= 0) {
        const field = m[2] ? text.slice(objectStart, i).indexOf(`"${m[2]}"`) : -1;
        return lineAt(text, field >= 0 ? objectStart + field : objectStart);
      }
      if (depth === 0) break;
    }
  }
  return null;
}
