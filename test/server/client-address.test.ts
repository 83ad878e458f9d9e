import { describe, expect, it } from 'vitest';
import { clientAddress } from '../../server/client-address.js';

describe('clientAddress: what the per-address bounds count', () => {
  it('an IPv4 address as itself, an IPv4-mapped IPv6 address as its IPv4 address', () => {
    expect(clientAddress('192.0.2.7')).toBe('192.0.2.7');
    expect(clientAddress('::ffff:192.0.2.7')).toBe('192.0.2.7');
    expect(clientAddress('::FFFF:192.0.2.7')).toBe('192.0.2.7');
  });

  it('an IPv6 address as its /64, however it is written', () => {
    expect(clientAddress('2001:db8::1')).toBe('2001:db8:0:0::/64');
    expect(clientAddress('2001:db8::2')).toBe('2001:db8:0:0::/64');
    expect(clientAddress('2001:0DB8:0000:0000:abcd::9')).toBe('2001:db8:0:0::/64');
    expect(clientAddress('2001:db8:0:1::1')).toBe('2001:db8:0:1::/64');
    expect(clientAddress('::1')).toBe('0:0:0:0::/64');
    expect(clientAddress('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(clientAddress('2001:db8:1:2:3:4:5:6')).toBe('2001:db8:1:2::/64');
  });

  it('anything else as given', () => {
    expect(clientAddress('not an address')).toBe('not an address');
    expect(clientAddress('')).toBe('');
  });
});
