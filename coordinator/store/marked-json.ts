// JSON that keeps `undefined` apart from a missing key, at any depth: an object with undefined-valued keys is
// written with their names under "~undefined", and parsing puts them back. Pure. Never used for client inputs or
// outputs (google.protobuf.Value has no undefined), only for the record's own fields (shard, split, later fields).

/** The key that lists an object's undefined-valued keys. TaskRecord and the objects in it never have a key of this name. */
export const UNDEFINED_KEYS = "~undefined";

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === "object" && !Array.isArray(v);
}

/** Like JSON.stringify (NaN and ±Infinity become null, as there), but undefined-valued keys survive a parse. */
export function stringifyMarked(v: unknown): string {
  return JSON.stringify(v, (_key, val: unknown) => {
    if (!isPlainObject(val)) return val;
    let undef: string[] | undefined;
    for (const k of Object.keys(val)) if (val[k] === undefined) (undef ??= []).push(k);
    return undef === undefined ? val : { ...val, [UNDEFINED_KEYS]: undef };
  });
}

/** Parses what stringifyMarked wrote. Throws a plain Error when the text is not JSON or a marker is malformed. */
export function parseMarked(s: string): unknown {
  return JSON.parse(s, (_key, val: unknown) => {
    if (!isPlainObject(val) || !Object.hasOwn(val, UNDEFINED_KEYS)) return val;
    const keys = val[UNDEFINED_KEYS];
    if (!Array.isArray(keys)) throw new Error(`${UNDEFINED_KEYS} is not a list of keys`);
    delete val[UNDEFINED_KEYS];
    for (const k of keys) val[String(k)] = undefined;
    return val;
  });
}
