// A chat client written against js-libp2p, not against Vecino's code: it
// dials a Vecino node (tcp, noise, yamux), joins a room's gossipsub topic,
// checks the signature of every message it hears and sends one of its own,
// all in the wire format of docs/chat-wire.md.
//
//   node chat-client.mjs PEER_MULTIADDR ROOM SEND_TEXT EXPECT_TEXT [ROOM_KEY]
//
// With ROOM_KEY (a private room's key, as in its invite), it seals what it
// sends and opens what it hears, with tweetnacl's secretbox (the only
// primitive Node's crypto lacks). With VECINO_CHAT_NAME set, its message
// in a public room carries that name.
// It prints one JSON object a line: {"event":"ready"} once the node is
// subscribed, {"event":"message",...} for each message it hears,
// {"event":"sent"} when its own message is out. It stays connected until
// its stdin ends (so that its own message is not cut off on its way), then
// exits 0 if it heard EXPECT_TEXT with a good signature; 1 after 60 seconds.
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { gossipsub } from '@libp2p/gossipsub'
import { multiaddr } from '@multiformats/multiaddr'
import crypto from 'node:crypto'
import nacl from 'tweetnacl'

// js-libp2p 3 expects Node 22's Promise.withResolvers; Node 20 lacks it.
Promise.withResolvers ??= function () {
  let resolve, reject
  const promise = new Promise((res, rej) => { resolve = res; reject = rej })
  return { promise, resolve, reject }
}

const [peer, room, sendText, expectText, roomKey] = process.argv.slice(2)
const topic = 'vecino/chat/room/' + room
const say = (o) => console.log(JSON.stringify(o))
setTimeout(() => { say({ event: 'timeout' }); process.exit(1) }, 60_000).unref()

// RFC 4648 base32, lower case, no padding.
const B32 = 'abcdefghijklmnopqrstuvwxyz234567'
function b32 (bytes) {
  let bits = 0; let val = 0; let out = ''
  for (const b of bytes) {
    val = (val << 8) | b; bits += 8
    while (bits >= 5) { out += B32[(val >>> (bits - 5)) & 31]; bits -= 5 }
  }
  if (bits > 0) out += B32[(val << (5 - bits)) & 31]
  return out
}
function unb32 (s) {
  const out = []; let bits = 0; let val = 0
  for (const ch of s) {
    val = (val << 5) | B32.indexOf(ch); bits += 5
    if (bits >= 8) { out.push((val >>> (bits - 8)) & 255); bits -= 8 }
  }
  return Buffer.from(out)
}
// Raw 32-byte keys out of Node's DER encodings, and back.
const rawPublic = (key) => key.export({ format: 'der', type: 'spki' }).subarray(-32)
const ED25519_SPKI = Buffer.from('302a300506032b6570032100', 'hex')
const publicFromRaw = (raw) => crypto.createPublicKey({ key: Buffer.concat([ED25519_SPKI, raw]), format: 'der', type: 'spki' })

const sign = crypto.generateKeyPairSync('ed25519')
const box = crypto.generateKeyPairSync('x25519')
const me = 'vc1' + b32(Buffer.concat([rawPublic(sign.publicKey), rawPublic(box.publicKey)]))

// A topic message is one envelope, or a bundle: an array of them.
function envelopes (data) {
  const doc = JSON.parse(new TextDecoder().decode(data))
  return Array.isArray(doc) ? doc : [doc]
}

function verify (env) {
  const body = JSON.parse(env.body)
  const from = unb32(body.from.slice(3)).subarray(0, 32)
  const ok = crypto.verify(null, Buffer.from('vecino-chat-room-v1\n' + env.body), publicFromRaw(from), Buffer.from(env.sig, 'base64'))
  return { body, ok }
}

// A private room: each author seals with the first 32 bytes of
// SHA-512("vecino-chat-room-seal-v1\n" || room key || room || "\n" || author).
const key = roomKey && Buffer.from(roomKey, 'base64url')
const authorKey = (from) => crypto.createHash('sha512')
  .update('vecino-chat-room-seal-v1\n').update(key).update(room + '\n' + from).digest().subarray(0, 32)
function seal (text) {
  const nonce = crypto.randomBytes(24)
  return Buffer.concat([nonce, nacl.secretbox(new TextEncoder().encode(text), nonce, authorKey(me))]).toString('base64')
}
function open (body) {
  if (body.sealed === undefined) return body.text
  if (!key) return null
  const s = Buffer.from(body.sealed, 'base64')
  const plain = nacl.secretbox.open(s.subarray(24), s.subarray(0, 24), authorKey(body.from))
  return plain && new TextDecoder().decode(plain)
}

let heard = false
process.stdin.on('data', () => {})
process.stdin.on('end', () => { node.stop().then(() => process.exit(heard ? 0 : 1)) })

const node = await createLibp2p({
  addresses: { listen: [] }, // behind NAT: dials out only
  transports: [tcp()],
  connectionEncrypters: [noise()],
  streamMuxers: [yamux()],
  services: { identify: identify(), pubsub: gossipsub({ emitSelf: false }) }
})
const pubsub = node.services.pubsub
pubsub.subscribe(topic)
pubsub.addEventListener('message', (evt) => {
  if (evt.detail.topic !== topic) return
  let envs
  try { envs = envelopes(evt.detail.data) } catch (e) { say({ event: 'garbage', error: String(e) }); return }
  for (const env of envs) {
    let m
    try { m = verify(env) } catch (e) { say({ event: 'garbage', error: String(e) }); continue }
    const text = open(m.body)
    say({ event: 'message', from: m.body.from, name: m.body.name, text, sealed: m.body.sealed !== undefined, verified: m.ok })
    if (m.ok && text === expectText) heard = true
  }
})
await node.dial(multiaddr(peer))
const nodeID = peer.split('/p2p/')[1]
while (!pubsub.getSubscribers(topic).some((p) => p.toString() === nodeID)) {
  await new Promise((resolve) => setTimeout(resolve, 100))
}
say({ event: 'ready', address: me })

// VECINO_CHAT_NAME, if set, goes with the message in a public room
// (docs/chat-wire.md: a private room's carry no name).
const name = process.env.VECINO_CHAT_NAME
const content = key ? { sealed: seal(sendText) } : name ? { text: sendText, name } : { text: sendText }
const body = JSON.stringify({ room, from: me, seq: Date.now(), ts: Date.now(), ...content })
const sig = crypto.sign(null, Buffer.from('vecino-chat-room-v1\n' + body), sign.privateKey).toString('base64')
// The node's subscription can reach this peer before this peer's own
// stream to the node is open; gossipsub then sends to no one and says so
// in recipients (no error). Publish again until the node is a recipient
// (a new gossipsub message each time, the same chat message).
for (let tries = 0; ; tries++) {
  const { recipients } = await pubsub.publish(topic, new TextEncoder().encode(JSON.stringify({ body, sig })))
  if (recipients.some((p) => p.toString() === nodeID)) break
  if (tries === 100) { say({ event: 'error', error: 'the node never became a recipient of the publish' }); process.exit(1) }
  await new Promise((resolve) => setTimeout(resolve, 100))
}
say({ event: 'sent', address: me })
