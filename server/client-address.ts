/**
 * The unit the per-address bounds count (`opensPerSecond`, `maxUploadsPerAddress`, the quotas of a
 * client without a subject): an IPv4 address, or an IPv6 address's /64 prefix. One IPv6 host is
 * routinely given a whole /64 and can pick any of its 2^64 addresses, so counting full IPv6
 * addresses would give one client as many quotas as it likes. An IPv4-mapped IPv6 address
 * (`::ffff:192.0.2.1`, what a dual-stack socket reports) counts as its IPv4 address.
 */
import { isIPv4, isIPv6 } from 'node:net';

/** `ip` as the per-address bounds count it (see the header); anything unparsable as itself. */
export function clientAddress(ip: string): string {
  const bare = ip.split('%')[0] ?? ip;
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare);
  if (mapped?.[1] && isIPv4(mapped[1])) return mapped[1];
  if (!isIPv6(bare)) return ip;
  const [head = '', tail] = bare.toLowerCase().split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  // An embedded IPv4 tail (::1.2.3.4) only ever reaches the low 64 bits: it does not matter here.
  const missing = 8 - headGroups.length - tailGroups.length;
  const groups =
    tail === undefined
      ? headGroups
      : [...headGroups, ...Array<string>(Math.max(0, missing)).fill('0'), ...tailGroups];
  const prefix = groups
    .slice(0, 4)
    .map((g) => (/^[0-9a-f]{1,4}$/.test(g) ? String(parseInt(g, 16).toString(16)) : g));
  return `${prefix.join(':')}::/64`;
}
