// A network outage inside the test's namespace: nftables drops a page's media ports.
import { execFileSync } from 'node:child_process';

/** nftables inside the test's namespace: drop every packet to or from these ports. */
export function blockPorts(ports) {
  const set = ports.join(', ');
  execFileSync('nft', ['-f', '-'], {
    input: `table inet e2e_outage {
      chain input { type filter hook input priority 0; policy accept;
        udp sport { ${set} } drop; udp dport { ${set} } drop;
        tcp sport { ${set} } drop; tcp dport { ${set} } drop; }
    }\n`,
  });
  return () => execFileSync('nft', ['delete', 'table', 'inet', 'e2e_outage']);
}

/** The ports a page's peer connections gathered local candidates on. */
export async function localPorts(page) {
  return page.evaluate(async () => {
    const found = new Set();
    for (const pc of window.__e2e.pcs) {
      for (const s of (await pc.getStats()).values()) if (s.type === 'local-candidate' && s.port > 9) found.add(s.port);
    }
    return [...found];
  });
}
