/** Every peer the bench knows, in the order they run within a round. */
import { caddyPeer } from './caddy.js';
import { haproxyPeer } from './haproxy.js';
import { nginxPeer } from './nginx.js';
import { checkPeer, type Peer, type PeerStatus } from './peer.js';

export const PEERS: readonly Peer[] = [nginxPeer, haproxyPeer, caddyPeer];
export const PEER_NAMES = PEERS.map((peer) => peer.name);

export function peerByName(name: string): Peer | undefined {
  return PEERS.find((peer) => peer.name === name);
}

/** The status of each named peer; `binaries` overrides where a peer's executable is. */
export function checkPeers(names: string[], binaries: Record<string, string> = {}): PeerStatus[] {
  return names.flatMap((name) => {
    const peer = peerByName(name);
    return peer ? [checkPeer(peer, binaries[name])] : [];
  });
}
