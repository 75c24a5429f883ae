// Encryption at rest for the agent's result journal (--encrypt-journal): AES-256-GCM from Node's crypto with a key
// file of the node's own, so a stolen edge box's disk does not give away task results. Each sealed record carries
// its own random IV and authentication tag; tampering, truncation or the wrong key is an error, never garbage.
// Never logs or returns key material; the key file must not be readable by others.
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { existsSync, readFileSync } from "node:fs";
import { dirname } from "node:path";
import { assertPrivateKeyFile, ensurePrivateDir, writePrivateFile } from "../../lib/private-files.js";

/** Marks a sealed record (and its format version) so a plaintext one is never mistaken for it. */
const MAGIC = Buffer.from("EPS1");
const IV_BYTES = 12;
const TAG_BYTES = 16;
const KEY_BYTES = 32;

/** A sealed record that cannot be opened: wrong key, altered bytes, or not a sealed record at all. */
export class SealedRecordError extends Error {
  override readonly name = "SealedRecordError";
}

export class JournalCipher {
  private constructor(private readonly key: Buffer) {}

  /**
   * Loads the key file (base64 of 32 bytes, mode 0600), creating it with a fresh random key when it does not exist.
   * Returns the cipher and whether the key was just created.
   */
  static fromKeyFile(path: string): { cipher: JournalCipher; created: boolean } {
    if (!existsSync(path)) {
      ensurePrivateDir(dirname(path));
      writePrivateFile(path, `${randomBytes(KEY_BYTES).toString("base64")}\n`);
      return { cipher: new JournalCipher(JournalCipher.read(path)), created: true };
    }
    return { cipher: new JournalCipher(JournalCipher.read(path)), created: false };
  }

  private static read(path: string): Buffer {
    assertPrivateKeyFile(path, "journal key file");
    const key = Buffer.from(readFileSync(path, "utf8").trim(), "base64");
    if (key.length !== KEY_BYTES) throw new Error(`${path} must hold a base64 AES-256 key (32 bytes), found ${key.length} bytes`);
    return key;
  }

  /** Whether bytes are a sealed record (by their prefix; open() still checks everything). */
  static isSealed(bytes: Uint8Array): boolean {
    return bytes.length >= MAGIC.length + IV_BYTES + TAG_BYTES && Buffer.from(bytes.subarray(0, MAGIC.length)).equals(MAGIC);
  }

  /**
   * Encrypts one record: `EPS1 | iv (12) | tag (16) | ciphertext`. `context` (e.g. the record type) is
   * authenticated but not stored: opening with another context fails, so a record cannot be passed off as another kind.
   */
  seal(plain: Uint8Array, context = ""): Buffer {
    const iv = randomBytes(IV_BYTES);
    const c = createCipheriv("aes-256-gcm", this.key, iv);
    c.setAAD(Buffer.from(context, "utf8"));
    const body = Buffer.concat([c.update(plain), c.final()]);
    return Buffer.concat([MAGIC, iv, c.getAuthTag(), body]);
  }

  /** Decrypts and authenticates a sealed record; throws SealedRecordError when it cannot be trusted. */
  open(sealed: Uint8Array, context = ""): Buffer {
    if (!JournalCipher.isSealed(sealed)) throw new SealedRecordError("not a sealed journal record (it may have been written without --encrypt-journal)");
    const b = Buffer.from(sealed);
    const iv = b.subarray(MAGIC.length, MAGIC.length + IV_BYTES);
    const tag = b.subarray(MAGIC.length + IV_BYTES, MAGIC.length + IV_BYTES + TAG_BYTES);
    const d = createDecipheriv("aes-256-gcm", this.key, iv);
    d.setAAD(Buffer.from(context, "utf8"));
    d.setAuthTag(tag);
    try {
      return Buffer.concat([d.update(b.subarray(MAGIC.length + IV_BYTES + TAG_BYTES)), d.final()]);
    } catch {
      throw new SealedRecordError("a sealed journal record does not authenticate (another key, or its bytes were changed)");
    }
  }
}

/**
 * The journal's RecordSealer for this cipher: records are sealed with their type as context. A plaintext record (the
 * journal held results before --encrypt-journal was turned on) is read as it is, so turning encryption on loses
 * nothing; with encryption off, a sealed record cannot be read and is kept aside as corrupt.
 */
export function journalSealer(cipher: JournalCipher): { seal(p: Uint8Array, type: number): Uint8Array; open(p: Uint8Array, type: number): Uint8Array } {
  return {
    seal: (p, type) => cipher.seal(p, `record-${type}`),
    open: (p, type) => (JournalCipher.isSealed(p) ? cipher.open(p, `record-${type}`) : p),
  };
}
