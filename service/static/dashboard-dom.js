// Building the page with plain DOM calls. No innerHTML, so nothing the API or the user typed can
// become markup, and no inline handlers, which a content security policy of 'self' would block.

export const $ = (selector) => document.querySelector(selector);

/** An element with properties (class, dataset, on<event>, anything else as a property) and children. */
export function h(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "class") node.className = value;
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
    else node[key] = value;
  }
  node.append(...children.flat().filter((c) => c != null && c !== false).map((c) => (c instanceof Node ? c : String(c))));
  return node;
}
