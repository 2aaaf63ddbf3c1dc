// A Helia peer (js IPFS: libp2p 2.10 + @helia/bitswap 2.2) for mcc's Bitswap interop tests
// and bench. Loopback only.
//
//   node helia.mjs fetch <multiaddr> <cid> <out-file>
//     dials the peer, reads the UnixFS file <cid> over Bitswap (unixfs.cat) into <out-file>,
//     prints {"bytes":N,"ms":T}.
//   node helia.mjs serve <file> [--chunk N] [--cid-version 0|1] [--raw-leaves true|false]
//                          [--max-children N] [--provide-to <multiaddr>]
//     imports <file>, listens on 127.0.0.1 (with --provide-to: runs kad-dht, dials that peer
//     and announces itself as a provider of the file through it), prints
//     {"peer_id":..,"addrs":[..],"cid":..,"dir":..} (dir: a directory holding the file),
//     then serves until stdin closes.
import { createReadStream, createWriteStream } from 'node:fs'
import { once } from 'node:events'
import { createLibp2p } from 'libp2p'
import { tcp } from '@libp2p/tcp'
import { noise } from '@chainsafe/libp2p-noise'
import { yamux } from '@chainsafe/libp2p-yamux'
import { identify } from '@libp2p/identify'
import { ping } from '@libp2p/ping'
import { kadDHT, passthroughMapper } from '@libp2p/kad-dht'
import { createBitswap } from '@helia/bitswap'
import { Helia } from '@helia/utils'
import { unixfs } from '@helia/unixfs'
import { MemoryBlockstore } from 'blockstore-core'
import { MemoryDatastore } from 'datastore-core'
import { multiaddr } from '@multiformats/multiaddr'
import { CID } from 'multiformats/cid'
import { fixedSize } from 'ipfs-unixfs-importer/chunker'
import { balanced } from 'ipfs-unixfs-importer/layout'

// @helia/bitswap as a Helia block broker (what the `helia` meta-package's `bitswap()` does).
function bitswapBroker (components) {
  const bitswap = createBitswap(components)
  return {
    name: 'bitswap',
    start: async () => { await bitswap.start() },
    stop: async () => { await bitswap.stop() },
    retrieve: async (cid, options) => bitswap.want(cid, options),
    announce: async (cid, block, options) => { await bitswap.notify(cid, block, options) }
  }
}

async function startHelia (dht = false) {
  const services = { identify: identify(), ping: ping() }
  if (dht) {
    services.dht = kadDHT({
      protocol: '/ipfs/kad/1.0.0',
      clientMode: false,
      peerInfoMapper: passthroughMapper,
      allowQueryWithZeroPeers: true
    })
  }
  const libp2p = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services
  })
  const helia = new Helia({
    libp2p,
    blockstore: new MemoryBlockstore(),
    datastore: new MemoryDatastore(),
    blockBrokers: [bitswapBroker],
    routers: []
  })
  await helia.start()
  return helia
}

function option (args, name, fallback) {
  const i = args.indexOf(name)
  return i >= 0 ? args[i + 1] : fallback
}

async function fetch (addr, cidText, out) {
  const helia = await startHelia()
  const ma = multiaddr(addr)
  const peer = ma.getPeerId()
  await helia.libp2p.dial(ma)
  // Helia wants blocks only from peers whose identify lists bitswap: wait for it.
  for (let i = 0; i < 100; i++) {
    const p = await helia.libp2p.peerStore.get(peerIdFrom(peer)).catch(() => null)
    if (p != null && p.protocols.some(x => x.startsWith('/ipfs/bitswap/'))) break
    await new Promise(resolve => setTimeout(resolve, 50))
  }
  const fs = unixfs(helia)
  const file = createWriteStream(out)
  const start = performance.now()
  let bytes = 0
  for await (const chunk of fs.cat(CID.parse(cidText), { signal: AbortSignal.timeout(600_000) })) {
    bytes += chunk.length
    if (!file.write(chunk)) await once(file, 'drain')
  }
  file.end()
  await once(file, 'finish')
  const ms = performance.now() - start
  console.log(JSON.stringify({ bytes, ms }))
  await helia.stop()
}

let peerIdFrom
async function main () {
  peerIdFrom = (await import('@libp2p/peer-id')).peerIdFromString
  const [mode, ...args] = process.argv.slice(2)
  if (mode === 'fetch') {
    await fetch(args[0], args[1], args[2])
    process.exit(0)
  } else if (mode === 'serve') {
    const provideTo = option(args, '--provide-to', null)
    const helia = await startHelia(provideTo != null)
    const fs = unixfs(helia)
    const chunk = Number(option(args, '--chunk', String(1024 * 1024)))
    const cidVersion = Number(option(args, '--cid-version', '1'))
    const rawLeaves = option(args, '--raw-leaves', cidVersion === 1 ? 'true' : 'false') === 'true'
    const maxChildren = Number(option(args, '--max-children', '1024'))
    const cid = await fs.addByteStream(createReadStream(args[0]), {
      chunker: fixedSize({ chunkSize: chunk }),
      cidVersion,
      rawLeaves,
      layout: balanced({ maxChildrenPerNode: maxChildren })
    })
    const dir = await fs.cp(cid, await fs.addDirectory(), 'file')
    if (provideTo != null) {
      const ma = multiaddr(provideTo)
      await helia.libp2p.dial(ma)
      // js kad adds a peer to its table once identify and a ping went through.
      for (let i = 0; i < 200 && helia.libp2p.services.dht.routingTable.size === 0; i++) {
        await new Promise(resolve => setTimeout(resolve, 50))
      }
      await helia.libp2p.contentRouting.provide(cid, { signal: AbortSignal.timeout(30_000) })
    }
    console.log(JSON.stringify({
      peer_id: helia.libp2p.peerId.toString(),
      addrs: helia.libp2p.getMultiaddrs().map(a => a.toString()),
      cid: cid.toString(),
      dir: dir.toString()
    }))
    process.stdin.resume()
    await once(process.stdin, 'end')
    await helia.stop()
    process.exit(0)
  } else {
    console.error('usage: helia.mjs fetch <multiaddr> <cid> <out> | serve <file> [options]')
    process.exit(2)
  }
}

main().catch(e => { console.error(e); process.exit(1) })
