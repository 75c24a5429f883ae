// Wire twins: copies of generated descriptors that read the same bytes into cheaper shapes. In a twin every
// google.protobuf.Value field is `bytes` (an embedded message and a bytes field share the wire format), and
// optionally NumericSeries.values is `repeated bytes` (each packed piece is one length-delimited record of whole
// doubles). Decoding with a twin and then `restoreTwin` gives the generated message, except that each Value field is
// kept as its bytes in `$unknown` (lib/value-wire.ts reads them as JSON). Nothing changes on the wire.
//
// Used where protobuf-es's decoding cannot be hooked otherwise: the agent's connect-node client (agent/wire.ts)
// and the coordinator's grpc-js deserializers (coordinator/rpc/grpc-adapter.ts).
import { clone, create, createFileRegistry, type DescField, type DescFile, type DescMessage, type Registry } from "@bufbuild/protobuf";
import { FieldDescriptorProto_Type, FileDescriptorProtoSchema, FileDescriptorSetSchema } from "@bufbuild/protobuf/wkt";
import { keepValueBytes } from "./value-wire.js";

const VALUE = "google.protobuf.Value";
const VALUE_TYPE_NAME = `.${VALUE}`;

export interface TwinOptions {
  /** NumericSeries.values as `repeated bytes` too (agent/wire.ts turns them into numbers in one copy). */
  seriesAsBytes?: boolean;
}

/** A registry of twins of `roots` and every file they import (see the top). */
export function twinRegistry(roots: readonly DescFile[], opts: TwinOptions = {}): Registry {
  const protos: ReturnType<typeof clone<typeof FileDescriptorProtoSchema>>[] = [];
  const seen = new Set<string>();
  const add = (f: DescFile): void => {
    if (seen.has(f.proto.name)) return;
    seen.add(f.proto.name);
    f.dependencies.forEach(add);
    const p = clone(FileDescriptorProtoSchema, f.proto);
    // google/protobuf/struct.proto itself stays as it is: only fields elsewhere that hold a Value become bytes.
    if (!p.name.startsWith("google/protobuf/")) {
      const walk = (msgs: typeof p.messageType): void => {
        for (const m of msgs) {
          for (const field of m.field)
            if (field.typeName === VALUE_TYPE_NAME) {
              field.type = FieldDescriptorProto_Type.BYTES;
              field.typeName = "";
            }
          walk(m.nestedType);
        }
      };
      walk(p.messageType);
    }
    protos.push(p);
  };
  roots.forEach(add);
  if (opts.seriesAsBytes) {
    const series = protos.find((p) => p.name === "edgeplane/v1/types.proto")?.messageType.find((m) => m.name === "NumericSeries");
    const values = series?.field.find((f) => f.name === "values");
    if (!values || values.type !== FieldDescriptorProto_Type.DOUBLE)
      throw new Error("edgeplane/v1/types.proto has no NumericSeries.values of type double: update lib/wire-twin.ts");
    values.type = FieldDescriptorProto_Type.BYTES;
    values.options = undefined;
  }
  return createFileRegistry(create(FileDescriptorSetSchema, { file: protos }));
}

/** The twin of `desc` in `registry`. */
export function twinOf(registry: Registry, desc: DescMessage): DescMessage {
  const t = registry.getMessage(desc.typeName);
  if (!t) throw new Error(`${desc.typeName} has no twin: build the registry from the file that defines it`);
  return t;
}

// ---------------------------------------------------------------------------------------------------------------
// Restore: after decoding with a twin, each Value field's bytes move to $unknown (lib/value-wire.ts).

interface Plan {
  values: DescField[];
  /** Message fields (singular, oneof member or repeated) whose type holds Value fields somewhere. */
  children: { field: DescField; plan: Plan }[];
}

const plans = new WeakMap<DescMessage, Plan | null>();

function planFor(desc: DescMessage, visiting: Set<DescMessage>): Plan | null {
  const known = plans.get(desc);
  if (known !== undefined) return known;
  if (visiting.has(desc)) return null; // recursive types: none of ours hold a Value
  visiting.add(desc);
  const values: DescField[] = [];
  const children: { field: DescField; plan: Plan }[] = [];
  for (const f of desc.fields) {
    if (f.fieldKind === "message" && f.message.typeName === VALUE) {
      if (f.oneof) throw new Error(`${f.toString()}: Value fields in a oneof are not handled by lib/wire-twin.ts`);
      values.push(f);
    } else if (f.fieldKind === "list" && f.listKind === "message" && f.message.typeName === VALUE) {
      throw new Error(`${f.toString()}: repeated Value fields are not handled by lib/wire-twin.ts`);
    } else if (f.fieldKind === "message" || (f.fieldKind === "list" && f.listKind === "message")) {
      const p = planFor(f.message, visiting);
      if (p) children.push({ field: f, plan: p });
    } else if (f.fieldKind === "map" && f.mapKind === "message" && planFor(f.message, visiting)) {
      throw new Error(`${f.toString()}: Value fields inside map values are not handled by lib/wire-twin.ts`);
    }
  }
  visiting.delete(desc);
  const plan = values.length > 0 || children.length > 0 ? { values, children } : null;
  plans.set(desc, plan);
  return plan;
}

/**
 * Turns a message decoded with the twin of `desc` into `desc`'s shape: each Value field's bytes are kept in
 * `$unknown` under its own number (readValueField reads them) and the field itself is left unset.
 */
export function restoreTwin(msg: object, desc: DescMessage): void {
  const plan = planFor(desc, new Set());
  if (plan) restore(msg as Record<string, unknown>, plan);
}

function restore(msg: Record<string, unknown>, plan: Plan): void {
  for (const f of plan.values) {
    const v = fieldValue(msg, f);
    if (v instanceof Uint8Array) keepValueBytes(msg, f, v);
  }
  for (const { field, plan: childPlan } of plan.children) {
    const v = fieldValue(msg, field);
    if (Array.isArray(v)) for (const m of v) restore(m as Record<string, unknown>, childPlan);
    else if (v) restore(v as Record<string, unknown>, childPlan);
  }
}

function fieldValue(msg: Record<string, unknown>, f: DescField): unknown {
  if (!f.oneof) return msg[f.localName];
  const o = msg[f.oneof.localName] as { case?: string; value?: unknown };
  return o.case === f.localName ? o.value : undefined;
}
