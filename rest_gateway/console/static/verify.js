// What the Console can check of a receipt in the browser (WebCrypto SHA-256): the payout
// transaction hashes to its txid, its merkle path (the BEEF's BUMP) leads to the block header's
// merkle root, that header hashes to the block hash and is the chain's header at that height,
// and the claimed outputs are the transaction's. The SDK's verify_receipt_document checks the
// scripts too (docs/ledger.md, "Receipts").

const hex = {
  bytes: (text) => Uint8Array.from(text.match(/../g) || [], (b) => parseInt(b, 16)),
  of: (bytes) => Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(""),
};
const reversed = (bytes) => Uint8Array.from(bytes).reverse();

async function sha256d(bytes) {
  const once = await crypto.subtle.digest("SHA-256", bytes);
  return new Uint8Array(await crypto.subtle.digest("SHA-256", once));
}

class Reader {
  constructor(bytes) {
    this.b = bytes;
    this.i = 0;
  }
  u8() {
    if (this.i >= this.b.length) throw new Error("receipt BEEF ends early");
    return this.b[this.i++];
  }
  take(n) {
    if (this.i + n > this.b.length) throw new Error("receipt BEEF ends early");
    const out = this.b.slice(this.i, this.i + n);
    this.i += n;
    return out;
  }
  varint() {
    const first = this.u8();
    const width = { 0xfd: 2, 0xfe: 4, 0xff: 8 }[first];
    if (!width) return first;
    let n = 0;
    const bytes = this.take(width);
    for (let k = width - 1; k >= 0; k--) n = n * 256 + bytes[k];
    return n;
  }
}

// BEEF: 4-byte version, then its BUMPs (BRC-74): height, tree height, per level its leaves.
function bumps(beef) {
  const r = new Reader(beef);
  r.take(4);
  const count = r.varint();
  const out = [];
  for (let n = 0; n < count; n++) {
    const height = r.varint();
    const levels = [];
    for (let level = 0, depth = r.u8(); level < depth; level++) {
      const leaves = new Map();
      for (let k = 0, m = r.varint(); k < m; k++) {
        const offset = r.varint();
        const flags = r.u8();
        leaves.set(offset, flags & 1 ? { duplicate: true } : { hash: r.take(32) });
      }
      levels.push(leaves);
    }
    out.push({ height, levels });
  }
  return out;
}

async function rootOf(bump, txidLE) {
  const mine = [...bump.levels[0]].find(([, leaf]) => leaf.hash && hex.of(leaf.hash) === hex.of(txidLE));
  if (!mine) return null;
  let [offset] = mine;
  let working = txidLE;
  for (const leaves of bump.levels) {
    const sibling = leaves.get(offset ^ 1);
    if (!sibling) return null;
    const other = sibling.duplicate ? working : sibling.hash;
    const pair = new Uint8Array(64);
    pair.set(offset & 1 ? other : working, 0);
    pair.set(offset & 1 ? working : other, 32);
    working = await sha256d(pair);
    offset >>= 1;
  }
  return working;
}

// [{check, ok, detail}] — every check listed, passed or not.
export async function verifyReceipt(receipt, tx, chainHeader) {
  if (!(window.crypto && crypto.subtle)) {
    return [{ check: "checks in this browser", ok: false, detail: "WebCrypto needs https or localhost" }];
  }
  const results = [];
  const add = (check, ok, detail) => results.push({ check, ok, detail });
  const txidLE = reversed(hex.bytes(receipt.txid));
  add("transaction hashes to its txid", hex.of(reversed(await sha256d(hex.bytes(tx.hex)))) === receipt.txid, receipt.txid);
  const header = hex.bytes(receipt.block.header);
  add("block header hashes to the block hash", header.length === 80 && hex.of(reversed(await sha256d(header))) === receipt.block.hash, `block ${receipt.block.height}`);
  add("header is the chain's header at that height", chainHeader === receipt.block.header, `height ${receipt.block.height}`);
  let proved = false;
  try {
    for (const bump of bumps(hex.bytes(receipt.beef))) {
      const root = await rootOf(bump, txidLE);
      if (root && bump.height === receipt.block.height && hex.of(root) === hex.of(header.slice(36, 68))) proved = true;
    }
  } catch (err) {
    add("merkle path parses", false, err.message);
  }
  add("merkle path leads to the header's merkle root", proved, "BEEF merkle path");
  const outputs = new Map(tx.outputs.map((o) => [o.vout, o]));
  const paid = receipt.outputs.every((o) => outputs.get(o.vout) && outputs.get(o.vout).satoshis === o.satoshis && outputs.get(o.vout).address === o.address);
  add("claimed outputs are the transaction's", paid, `${receipt.outputs.length} output(s)`);
  return results;
}
