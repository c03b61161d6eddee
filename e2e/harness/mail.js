// Reads the SMTP sink's .eml files: the text parts, decoded, and the guest link.
import { mails } from './stack.js';

function decodePart(headers, body) {
  const cte = /content-transfer-encoding:\s*([\w-]+)/i.exec(headers)?.[1]?.toLowerCase();
  if (cte === 'base64') return Buffer.from(body.replace(/\s+/g, ''), 'base64').toString('utf8');
  if (cte === 'quoted-printable') {
    const bytes = body.replace(/=\r?\n/g, '').replace(/=([0-9A-F]{2})/gi, (_, h) => String.fromCharCode(parseInt(h, 16)));
    return Buffer.from(bytes, 'latin1').toString('utf8');
  }
  return body;
}

/** Every leaf part of a message, decoded, with its headers. */
export function parts(raw) {
  const split = raw.search(/\r?\n\r?\n/);
  const headers = raw.slice(0, split);
  const body = raw.slice(split).replace(/^\r?\n\r?\n/, '');
  const boundary = /boundary="?([^";\r\n]+)"?/i.exec(headers)?.[1];
  if (!/content-type:\s*multipart\//i.test(headers) || !boundary) return [{ headers, text: decodePart(headers, body) }];
  return body.split(`--${boundary}`).slice(1)
    .filter((p) => !p.startsWith('--'))
    .flatMap((p) => parts(p.replace(/^\r?\n/, '')));
}

/** The mails to `address` (by their To: header). */
export function mailsTo(mailDir, address) {
  return mails(mailDir).filter((m) => {
    const to = /^to:(.*(?:\r?\n[ \t].*)*)/im.exec(m)?.[1] ?? '';
    return to.toLowerCase().includes(address.toLowerCase());
  });
}

/** The guest link (…/join/<callId>?t=…) in a mail's plain text. */
export function guestLink(raw) {
  for (const p of parts(raw)) {
    if (!/content-type:\s*text\/plain/i.test(p.headers) && /content-type/i.test(p.headers)) continue;
    const m = /https?:\/\/[^\s<>"]+\/join\/[^\s<>"]+/.exec(p.text);
    if (m) return m[0];
  }
  return null;
}
