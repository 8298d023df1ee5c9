// The job shown on the right. Several modules draw parts of it (the facts, the controls, the layer
// pictures, the predictions), and any answer they await may arrive after another job was picked;
// so they all read it from here, and check isCurrent(id) before drawing what came back.

/** The statuses after which a job never changes again. */
export const TERMINAL = new Set(["succeeded", "failed", "cancelled", "pruned"]);

/**
 * `state.current` is the shown job: {id, job, source, layers: {loading, pending}, trainer}, or null
 * before one is picked. It sits in an object because a module cannot assign another's export.
 */
export const state = { current: null };

/** Is job `id` still the one shown? */
export const isCurrent = (id) => state.current?.id === id;
