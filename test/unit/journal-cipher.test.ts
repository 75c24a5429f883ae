// agent/identity/journal-cipher.ts: AES-256-GCM records round-trip, carry no plaintext, and refuse the wrong key,
// altered bytes and another context; the key file is created 0600 and refused when others can read it.
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { JournalCipher, SealedRecordError } from "../../agent/identity/journal-cipher.js";

const dirs: string[] = [];
afterEach(() => {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});
const tmp = () => {
  const d = mkdtempSync(join(tmpdir(), "edgeplane-jc-"));
  dirs.push(d);
  return d;
};

describe("JournalCipher", () => {
  it("creates a 0600 key file once and reuses it", () => {
    const path = join(tmp(), "keys", "journal.key");
    const a = JournalCipher.fromKeyFile(path);
    expect(a.created).toBe(true);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const b = JournalCipher.fromKeyFile(path);
    expect(b.created).toBe(false);
    const sealed = a.cipher.seal(Buffer.from("result"), "result");
    expect(b.cipher.open(sealed, "result").toString()).toBe("result");
  });

  it("seals without leaking the plaintext, with a fresh IV each time", () => {
    const { cipher } = JournalCipher.fromKeyFile(join(tmp(), "k"));
    const plain = Buffer.from("mean=42 secret-result-bytes");
    const s1 = cipher.seal(plain, "result");
    const s2 = cipher.seal(plain, "result");
    expect(s1.includes(plain)).toBe(false);
    expect(s1.equals(s2)).toBe(false);
    expect(JournalCipher.isSealed(s1)).toBe(true);
    expect(JournalCipher.isSealed(plain)).toBe(false);
    expect(cipher.open(s1, "result").equals(plain)).toBe(true);
  });

  it("refuses another key, a changed byte, another context and plaintext", () => {
    const dir = tmp();
    const { cipher } = JournalCipher.fromKeyFile(join(dir, "a"));
    const { cipher: other } = JournalCipher.fromKeyFile(join(dir, "b"));
    const sealed = cipher.seal(Buffer.from("payload"), "result");
    expect(() => other.open(sealed, "result")).toThrow(SealedRecordError);
    const flipped = Buffer.from(sealed);
    flipped[flipped.length - 1] ^= 1;
    expect(() => cipher.open(flipped, "result")).toThrow(/does not authenticate/);
    expect(() => cipher.open(sealed, "ack")).toThrow(/does not authenticate/);
    expect(() => cipher.open(Buffer.from("payload"), "result")).toThrow(/not a sealed journal record/);
  });

  it("refuses a key file others can read, or one of the wrong size", () => {
    const dir = tmp();
    const loose = join(dir, "loose");
    JournalCipher.fromKeyFile(loose);
    chmodSync(loose, 0o644);
    expect(() => JournalCipher.fromKeyFile(loose)).toThrow(/readable by others \(mode 0644\); run: chmod 600/);
    const short = join(dir, "short");
    writeFileSync(short, Buffer.alloc(8).toString("base64"), { mode: 0o600 });
    expect(() => JournalCipher.fromKeyFile(short)).toThrow(/must hold a base64 AES-256 key \(32 bytes\), found 8 bytes/);
    expect(readFileSync(loose, "utf8").trim()).toMatch(/^[A-Za-z0-9+/]{43}=$/);
  });
});
